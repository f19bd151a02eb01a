// Command cnpg-cluster-prep does, with CloudNativePG's own Go code (v1.30.0, from the Go module proxy), the two steps
// of its operator that the benchmark's `cnpg` system needs before CNPG's instance manager will run a Cluster with no
// operator present:
//
//   - the admission webhook's defaulting: api/v1 `Cluster.Default()` (the image, initdb's database and owner, the
//     PostgreSQL parameters CNPG fixes or defaults, the default monitoring queries, replication slots, ...);
//   - the Role the operator gives each instance's ServiceAccount: pkg/specs `CreateRole` (what the manager may read
//     and write, named Secrets and ConfigMaps only);
//   - the command lines and environment of the initdb Job and of instance 1's Pod (pkg/specs).
//
// One JSON Cluster on stdin; one JSON document (see `output`) on stdout.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	apiv1 "github.com/cloudnative-pg/cloudnative-pg/api/v1"
	"github.com/cloudnative-pg/cloudnative-pg/pkg/specs"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

type output struct {
	Cluster *apiv1.Cluster `json:"cluster"`
	Role    rbacv1.Role    `json:"role"`
	// InitCommand is the command line of the initdb Job's container for instance 1.
	InitCommand []string `json:"initCommand"`
	// RunCommand is the command line of the instance Pod's postgres container.
	RunCommand []string `json:"runCommand"`
	// Env is the environment of both containers for instance 1 (PGDATA, POD_NAME, NAMESPACE, CLUSTER_NAME, ...).
	Env []corev1.EnvVar `json:"env"`
}

func run(in io.Reader, out io.Writer) error {
	decoder := json.NewDecoder(in)
	decoder.DisallowUnknownFields()
	var cluster apiv1.Cluster
	if err := decoder.Decode(&cluster); err != nil {
		return fmt.Errorf("decoding the Cluster on stdin: %w", err)
	}
	cluster.Default()
	role := specs.CreateRole(specs.RoleOptions{Cluster: &cluster})
	job := specs.CreatePrimaryJobViaInitdb(cluster, 1)
	pod, err := specs.NewInstance(context.Background(), cluster, 1, false)
	if err != nil {
		return fmt.Errorf("generating the instance Pod: %w", err)
	}
	return json.NewEncoder(out).Encode(output{
		Cluster:     &cluster,
		Role:        role,
		InitCommand: job.Spec.Template.Spec.Containers[0].Command,
		RunCommand:  pod.Spec.Containers[0].Command,
		Env:         specs.CreatePodEnvConfig(cluster, specs.GetInstanceName(cluster.Name, 1)).EnvVars,
	})
}

func main() {
	if len(os.Args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: cnpg-cluster-prep < cluster.json > prepared.json")
		os.Exit(2)
	}
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "cnpg-cluster-prep:", err)
		os.Exit(1)
	}
}
