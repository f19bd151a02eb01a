package main

import (
	"context"
	"encoding/json"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	apiv1 "github.com/cloudnative-pg/cloudnative-pg/api/v1"
	"github.com/cloudnative-pg/cloudnative-pg/pkg/specs"
)

type specsRequest struct {
	// Clusters are postgresql.cnpg.io/v1 Cluster manifests (JSON), as a user would apply them.
	Clusters []json.RawMessage `json:"clusters"`
}

type envVar struct {
	Name  string `json:"name"`
	Value string `json:"value,omitempty"`
	// From names where a value comes from when it is not literal (fieldRef, secretKeyRef, ...).
	From string `json:"from,omitempty"`
}

type invocation struct {
	// Object is the pod or Job the operator would create.
	Object  string   `json:"object"`
	Command []string `json:"command"`
	Args    []string `json:"args"`
	Env     []envVar `json:"env"`
	// ProbeScheme is the scheme of the kubelet probes on :8000 (pods only).
	ProbeScheme string `json:"probeScheme,omitempty"`
}

type clusterInvocations struct {
	Cluster     string                `json:"cluster"`
	Invocations map[string]invocation `json:"invocations"`
}

func runSpecs(input []byte) (any, error) {
	var req specsRequest
	if err := json.Unmarshal(input, &req); err != nil {
		return nil, fmt.Errorf("specs request: %w", err)
	}
	out := make([]clusterInvocations, 0, len(req.Clusters))
	for _, raw := range req.Clusters {
		var cluster apiv1.Cluster
		if err := json.Unmarshal(raw, &cluster); err != nil {
			return nil, fmt.Errorf("cluster manifest: %w", err)
		}
		// What the admission webhook does before the operator ever sees the object.
		cluster.SetDefaults()
		if cluster.Status.Image == "" {
			cluster.Status.Image = cluster.Spec.ImageName
		}
		result := clusterInvocations{Cluster: cluster.Name, Invocations: map[string]invocation{}}
		for serial := 1; serial <= cluster.Spec.Instances; serial++ {
			pod, err := specs.NewInstance(context.Background(), cluster, serial, true)
			if err != nil {
				return nil, fmt.Errorf("specs.NewInstance(%s, %d): %w", cluster.Name, serial, err)
			}
			result.Invocations[fmt.Sprintf("run-%d", serial)] = fromPod(pod)
		}
		bootstrap := cluster.Spec.Bootstrap
		switch {
		case bootstrap != nil && bootstrap.Recovery != nil:
			result.Invocations["restore-1"] = fromJob(specs.CreatePrimaryJobViaRecovery(cluster, 1, nil))
		case bootstrap != nil && bootstrap.PgBaseBackup != nil:
			result.Invocations["pgbasebackup-1"] = fromJob(specs.CreatePrimaryJobViaPgBaseBackup(cluster, 1))
		case bootstrap != nil && bootstrap.InitDB != nil:
			result.Invocations["init-1"] = fromJob(specs.CreatePrimaryJobViaInitdb(cluster, 1))
		}
		for serial := 2; serial <= cluster.Spec.Instances; serial++ {
			result.Invocations[fmt.Sprintf("join-%d", serial)] = fromJob(specs.JoinReplicaInstance(cluster, serial))
		}
		out = append(out, result)
	}
	return out, nil
}

func postgresContainer(containers []corev1.Container) *corev1.Container {
	for i := range containers {
		if containers[i].Name == specs.PostgresContainerName {
			return &containers[i]
		}
	}
	return nil
}

func envOf(container *corev1.Container) []envVar {
	vars := make([]envVar, 0, len(container.Env))
	for _, e := range container.Env {
		v := envVar{Name: e.Name, Value: e.Value}
		if e.ValueFrom != nil {
			switch {
			case e.ValueFrom.FieldRef != nil:
				v.From = "fieldRef:" + e.ValueFrom.FieldRef.FieldPath
			case e.ValueFrom.SecretKeyRef != nil:
				v.From = "secretKeyRef:" + e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
			case e.ValueFrom.ConfigMapKeyRef != nil:
				v.From = "configMapKeyRef:" + e.ValueFrom.ConfigMapKeyRef.Name + "/" + e.ValueFrom.ConfigMapKeyRef.Key
			default:
				v.From = "valueFrom"
			}
		}
		vars = append(vars, v)
	}
	return vars
}

func fromPod(pod *corev1.Pod) invocation {
	c := postgresContainer(pod.Spec.Containers)
	if c == nil {
		return invocation{Object: "Pod/" + pod.Name}
	}
	inv := invocation{Object: "Pod/" + pod.Name, Command: c.Command, Args: c.Args, Env: envOf(c)}
	if c.ReadinessProbe != nil && c.ReadinessProbe.HTTPGet != nil {
		inv.ProbeScheme = string(c.ReadinessProbe.HTTPGet.Scheme)
		if inv.ProbeScheme == "" {
			inv.ProbeScheme = string(corev1.URISchemeHTTP)
		}
	}
	return inv
}

func fromJob(job *batchv1.Job) invocation {
	containers := job.Spec.Template.Spec.Containers
	if len(containers) == 0 {
		return invocation{Object: "Job/" + job.Name}
	}
	c := &containers[0]
	return invocation{Object: "Job/" + job.Name, Command: c.Command, Args: c.Args, Env: envOf(c)}
}
