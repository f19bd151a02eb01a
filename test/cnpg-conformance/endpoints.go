package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	apiv1 "github.com/cloudnative-pg/cloudnative-pg/api/v1"
	"github.com/cloudnative-pg/cloudnative-pg/pkg/certs"
	"github.com/cloudnative-pg/cloudnative-pg/pkg/management/postgres/webserver"
	"github.com/cloudnative-pg/cloudnative-pg/pkg/management/postgres/webserver/client/remote"
	"github.com/cloudnative-pg/cloudnative-pg/pkg/management/url"
	"github.com/cloudnative-pg/cloudnative-pg/pkg/postgres"
	"github.com/cloudnative-pg/cloudnative-pg/pkg/utils"
	contextutils "github.com/cloudnative-pg/cloudnative-pg/pkg/utils/context"
)

type keyPair struct {
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

type podTarget struct {
	Name string `json:"name"`
	// Target is where this instance's status server really listens (host:port on 127.0.0.1).
	Target string `json:"target"`
}

type endpointsRequest struct {
	Cluster   string `json:"cluster"`
	Namespace string `json:"namespace"`
	// CAFile is the server CA (the `<cluster>-ca` Secret's ca.crt).
	CAFile       string  `json:"caFile"`
	OperatorCert keyPair `json:"operatorCert"`
	StrangerCert keyPair `json:"strangerCert"`
	// Command is the postgres container's command from CNPG's pod template: it decides http or https.
	Command []string    `json:"command"`
	Pods    []podTarget `json:"pods"`
	// BackupPod takes the volume-snapshot style backup (/pg/mode/backup); BackupName names it.
	BackupPod  string `json:"backupPod"`
	BackupName string `json:"backupName"`
	WorkDir    string `json:"workDir"`
}

// check is one call the operator makes, with what CNPG's code expects and what pgim answered.
type check struct {
	Endpoint    string `json:"endpoint"`
	Pod         string `json:"pod"`
	Call        string `json:"call"`
	Expectation string `json:"expectation"`
	Answer      string `json:"answer"`
	OK          bool   `json:"ok"`
}

type endpointsReport struct {
	Scheme string  `json:"scheme"`
	Checks []check `json:"checks"`
}

// relay listens on <loopback address>:8000 and forwards to the instance's real port: CNPG's client always dials
// PodIP:8000 (url.StatusPort is a constant), so each instance gets its own 127.x.y.z address as its "pod IP".
// It only copies bytes, so TLS (and the operator's client certificate) is end to end.
func relay(target string) (string, func(), error) {
	for attempt := 0; attempt < 20; attempt++ {
		b := make([]byte, 3)
		if _, err := rand.Read(b); err != nil {
			return "", nil, err
		}
		ip := fmt.Sprintf("127.%d.%d.%d", 1+int(b[0])%250, b[1], 1+int(b[2])%250)
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(url.StatusPort)))
		if err != nil {
			continue
		}
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer conn.Close()
					upstream, err := net.DialTimeout("tcp", target, 5*time.Second)
					if err != nil {
						return
					}
					defer upstream.Close()
					done := make(chan struct{}, 2)
					go func() { _, _ = io.Copy(upstream, conn); done <- struct{}{} }()
					go func() { _, _ = io.Copy(conn, upstream); done <- struct{}{} }()
					<-done
				}()
			}
		}()
		return ip, func() { _ = ln.Close() }, nil
	}
	return "", nil, errors.New("no free loopback address for port 8000")
}

func loadPair(p keyPair) (*tls.Certificate, error) {
	if p.Cert == "" {
		return nil, nil
	}
	pair, err := tls.LoadX509KeyPair(p.Cert, p.Key)
	if err != nil {
		return nil, err
	}
	return &pair, nil
}

// operatorContext builds the context the operator's cluster controller builds (certs.NewTLSConfigForContext), from
// a Kubernetes client that holds the cluster's CA Secret.
func operatorContext(req endpointsRequest, cluster *apiv1.Cluster, clientCert *tls.Certificate) (context.Context, error) {
	ca, err := os.ReadFile(req.CAFile)
	if err != nil {
		return nil, err
	}
	key := cluster.GetServerCASecretObjectKey()
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace},
		Data:       map[string][]byte{certs.CACertKey: ca},
	}
	kube := fake.NewClientBuilder().WithObjects(secret).Build()
	ctx := context.WithValue(context.Background(), contextutils.ContextKeyCluster, cluster)
	return certs.NewTLSConfigForContext(ctx, certs.TLSConfigOptions{Client: kube, CASecret: key, ClientCert: clientCert})
}

func makePod(name, ip string, command []string) corev1.Pod {
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "postgres", Command: command}}},
		Status: corev1.PodStatus{
			PodIP:      ip,
			Phase:      corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
}

func describe(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

func runEndpoints(input []byte) (any, error) {
	var req endpointsRequest
	if err := json.Unmarshal(input, &req); err != nil {
		return nil, fmt.Errorf("endpoints request: %w", err)
	}
	cluster := &apiv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: req.Cluster, Namespace: req.Namespace}}
	operatorCert, err := loadPair(req.OperatorCert)
	if err != nil {
		return nil, fmt.Errorf("operator certificate: %w", err)
	}
	strangerCert, err := loadPair(req.StrangerCert)
	if err != nil {
		return nil, fmt.Errorf("stranger certificate: %w", err)
	}
	ctx, err := operatorContext(req, cluster, operatorCert)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()

	var pods corev1.PodList
	podByName := map[string]*corev1.Pod{}
	for _, p := range req.Pods {
		ip, stop, err := relay(p.Target)
		if err != nil {
			return nil, err
		}
		defer stop()
		pods.Items = append(pods.Items, makePod(p.Name, ip, req.Command))
	}
	for i := range pods.Items {
		podByName[pods.Items[i].Name] = &pods.Items[i]
	}
	report := endpointsReport{Scheme: remote.GetStatusSchemeFromPod(&pods.Items[0]).ToString()}
	add := func(c check) { report.Checks = append(report.Checks, c) }
	instance := remote.NewClient().Instance()

	// GET /pg/status on every pod, sorted by CNPG (primary first).
	statuses := instance.GetStatusFromInstances(ctx, pods)
	statusByPod := map[string]int{}
	for i, item := range statuses.Items {
		statusByPod[item.Pod.Name] = i
		ok := item.Error == nil && item.SystemID != "" && item.InstanceManagerVersion != ""
		answer := describe(item.Error)
		if item.Error == nil {
			answer = fmt.Sprintf("isPrimary=%t timeLineID=%d replicationInfo=%d isWalReceiverActive=%t instanceArch=%s",
				item.IsPrimary, item.TimeLineID, len(item.ReplicationInfo), item.IsWalReceiverActive, item.InstanceArch)
		}
		add(check{Endpoint: "GET /pg/status", Pod: item.Pod.Name, Call: "InstanceClient.GetStatusFromInstances",
			Expectation: "200 and a document json.Unmarshal decodes into PostgresqlStatus", Answer: answer, OK: ok})
	}
	primaries := statuses.PrimaryNames()
	add(check{Endpoint: "GET /pg/status", Pod: strings.Join(statuses.GetNames(), ","), Call: "PostgresqlStatusList sort + PrimaryNames",
		Expectation: "exactly one primary, sorted first", Answer: fmt.Sprintf("primaries=%v order=%v", primaries, statuses.GetNames()),
		OK: len(primaries) == 1 && len(statuses.Items) > 0 && statuses.Items[0].IsPrimary})

	// GET /pg/controldata (operator certificate).
	for _, pod := range pods.Items {
		out, err := instance.GetPgControlDataFromInstance(ctx, &pod)
		parsed := utils.ParsePgControldataOutput(out)
		state := parsed.GetDatabaseClusterState()
		ok := err == nil && state != "" && parsed.GetREDOWALFile() != ""
		if i, found := statusByPod[pod.Name]; found && ok {
			ok = parsed.GetDatabaseSystemIdentifier() == statuses.Items[i].SystemID
		}
		add(check{Endpoint: "GET /pg/controldata", Pod: pod.Name, Call: "InstanceClient.GetPgControlDataFromInstance",
			Expectation: "pg_controldata text that utils.ParsePgControldataOutput reads (state, REDO WAL file, system id = /pg/status systemID)",
			Answer:      fmt.Sprintf("err=%s state=%q redoWAL=%q", describe(err), state, parsed.GetREDOWALFile()), OK: ok})
	}

	first := &pods.Items[0]
	// Operator authentication: no client certificate -> 401 (permanent), unknown certificate -> 503 (transient).
	// Each check gets its own client: a pooled TLS connection would carry the operator's certificate over.
	if noCertCtx, err := operatorContext(req, cluster, nil); err == nil {
		_, err := remote.NewClient().Instance().GetPgControlDataFromInstance(noCertCtx, first)
		var statusErr *remote.StatusError
		ok := errors.As(err, &statusErr) && statusErr.StatusCode == http.StatusUnauthorized
		add(check{Endpoint: "GET /pg/controldata", Pod: first.Name, Call: "without a client certificate",
			Expectation: "401 client certificate required", Answer: describe(err), OK: ok})
	}
	if strangerCert != nil {
		if strangerCtx, err := operatorContext(req, cluster, strangerCert); err == nil {
			_, err := remote.NewClient().Instance().GetPgControlDataFromInstance(strangerCtx, first)
			ok := remote.IsTransientAuthError(err)
			add(check{Endpoint: "GET /pg/controldata", Pod: first.Name, Call: "with a certificate that is not the operator's",
				Expectation: "503 operator certificate not recognized (remote.IsTransientAuthError)", Answer: describe(err), OK: ok})
		}
	}

	// /pg/mode/backup: the volume-snapshot online backup, step by step as pkg/reconciler/backup/volumesnapshot does.
	if target, found := podByName[req.BackupPod]; found {
		backupChecks(ctx, target, req.BackupName, add)
	}

	// POST /pg/archive/partial: only meaningful on a fenced primary with WAL archiving.
	for _, pod := range pods.Items {
		name, err := instance.ArchivePartialWAL(ctx, &pod)
		var statusErr *remote.StatusError
		ok := errors.As(err, &statusErr) && statusErr.StatusCode >= 400 && statusErr.StatusCode != http.StatusServiceUnavailable
		add(check{Endpoint: "POST /pg/archive/partial", Pod: pod.Name, Call: "InstanceClient.ArchivePartialWAL",
			Expectation: "an error CNPG reports as such (StatusError, not transient): pgim has no WAL archiving yet",
			Answer:      fmt.Sprintf("wal=%q err=%s", name, describe(err)), OK: ok})
	}

	// PUT /update: the operator's online upgrade path (cluster_upgrade.go upgradeInstanceManager).
	updateChecks(ctx, req, instance, statuses.Items[0], podByName[statuses.Items[0].Pod.Name], add)

	// The kubelet probes and the isolation pinger's /failsafe.
	probeChecks(ctx, req, pods.Items, add)
	return report, nil
}

func backupChecks(ctx context.Context, pod *corev1.Pod, name string, add func(check)) {
	backup := remote.NewClient().Backup()
	status, err := backup.StatusWithErrors(ctx, pod)
	ok := err == nil && status.Data != nil && status.Data.Phase == ""
	add(check{Endpoint: "GET /pg/mode/backup", Pod: pod.Name, Call: "BackupClient.StatusWithErrors (no backup yet)",
		Expectation: "data {} (phase empty): the operator then starts a backup", Answer: fmt.Sprintf("err=%s data=%s", describe(err), jsonOf(status)), OK: ok})

	res, err := backup.Start(ctx, pod, webserver.StartBackupRequest{ImmediateCheckpoint: true, WaitForArchive: false, BackupName: name})
	ok = err == nil && res.GetError() == nil
	add(check{Endpoint: "POST /pg/mode/backup", Pod: pod.Name, Call: "BackupClient.Start",
		Expectation: "200 with data (Response.GetError() == nil)", Answer: fmt.Sprintf("err=%s body=%s", describe(err), jsonOf(res)), OK: ok})

	started := waitPhase(ctx, backup, pod, webserver.Started)
	add(check{Endpoint: "GET /pg/mode/backup", Pod: pod.Name, Call: "BackupClient.StatusWithErrors until started",
		Expectation: "phase starting, then started with beginLSN, backupName = the request's",
		Answer:      jsonOf(started), OK: started != nil && started.Data != nil && started.Data.Phase == webserver.Started &&
			started.Data.BeginLSN != "" && started.Data.BackupName == name})

	res, err = backup.Stop(ctx, pod, *webserver.NewStopBackupRequest(name))
	ok = err == nil && res.GetError() == nil
	add(check{Endpoint: "PUT /pg/mode/backup", Pod: pod.Name, Call: "BackupClient.Stop",
		Expectation: "200 with data (phase closing)", Answer: fmt.Sprintf("err=%s body=%s", describe(err), jsonOf(res)), OK: ok})

	done := waitPhase(ctx, backup, pod, webserver.Completed)
	ok = done != nil && done.Data != nil && done.Data.Phase == webserver.Completed && done.Data.EndLSN != "" &&
		strings.Contains(string(done.Data.LabelFile), "START WAL LOCATION") && done.Data.BackupName == name
	answer := "no completed phase"
	if done != nil && done.Data != nil {
		answer = fmt.Sprintf("phase=%s beginLSN=%s endLSN=%s labelFile=%q spcmapFile=%d bytes",
			done.Data.Phase, done.Data.BeginLSN, done.Data.EndLSN, firstLine(string(done.Data.LabelFile)), len(done.Data.SpcmapFile))
	}
	add(check{Endpoint: "GET /pg/mode/backup", Pod: pod.Name, Call: "BackupClient.StatusWithErrors until completed",
		Expectation: "phase completed with endLSN, labelFile (backup_label) and spcmapFile (tablespace_map) as base64 bytes",
		Answer:      answer, OK: ok})

	res, err = backup.Stop(ctx, pod, *webserver.NewStopBackupRequest("another-" + name))
	ok = err == nil && res.Error != nil && res.Error.Code == "NOT_CURRENT_RUNNING_BACKUP"
	add(check{Endpoint: "PUT /pg/mode/backup", Pod: pod.Name, Call: "BackupClient.Stop for another backup",
		Expectation: "422 NOT_CURRENT_RUNNING_BACKUP in the error envelope", Answer: fmt.Sprintf("err=%s body=%s", describe(err), jsonOf(res)), OK: ok})
}

func waitPhase(ctx context.Context, backup remote.BackupClient, pod *corev1.Pod, phase webserver.BackupConnectionPhase) *webserver.Response[webserver.BackupResultData] {
	deadline := time.Now().Add(2 * time.Minute)
	var last *webserver.Response[webserver.BackupResultData]
	for time.Now().Before(deadline) {
		status, err := backup.StatusWithErrors(ctx, pod)
		if err == nil {
			last = status
			if status.Error != nil && !webserver.IsRetryableError(status.Error) {
				return status
			}
			if status.Data != nil && status.Data.Phase == phase {
				return status
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return last
}

func updateChecks(
	ctx context.Context,
	req endpointsRequest,
	instance remote.InstanceClient,
	status postgres.PostgresqlStatus,
	pod *corev1.Pod,
	add func(check),
) {
	// cluster_upgrade.go isInstanceNeedingRollout: a ready instance that reports no executable hash is an "old
	// instance manager" whose pod the operator rolls, after every restart (seen with the real operator). With a
	// hash, the operator calls /update only with ENABLE_INSTANCE_MANAGER_INPLACE_UPDATES (off by default).
	add(check{Endpoint: "PUT /update", Pod: pod.Name, Call: "isInstanceNeedingRollout: the executableHash gate",
		Expectation: "executableHash set: no endless rollout; /update only with in-place updates on",
		Answer:      fmt.Sprintf("executableHash=%.12s…", status.ExecutableHash), OK: len(status.ExecutableHash) == 64})

	// The operator looks the reported architecture up among its own manager binaries (operator/manager_<GOARCH>);
	// an unknown name sets the phase ArchitectureBinaryMissing.
	operatorDir := filepath.Join(req.WorkDir, "operator")
	if err := os.MkdirAll(operatorDir, 0o755); err != nil {
		return
	}
	for _, arch := range []string{"amd64", "arm64"} {
		_ = os.WriteFile(filepath.Join(operatorDir, "manager_"+arch), []byte("not a real manager: "+arch+"\n"), 0o644)
	}
	if err := os.Chdir(req.WorkDir); err != nil {
		return
	}
	_ = utils.DetectAvailableArchitectures()
	arch, err := utils.GetAvailableArchitecture(status.InstanceArch)
	add(check{Endpoint: "GET /pg/status", Pod: pod.Name, Call: "utils.GetAvailableArchitecture(instanceArch)",
		Expectation: "a Go architecture name the operator ships a manager binary for (amd64, arm64)",
		Answer:      fmt.Sprintf("instanceArch=%q err=%s", status.InstanceArch, describe(err)), OK: err == nil})
	if arch == nil {
		return
	}
	err = instance.UpgradeInstanceManager(ctx, pod, arch)
	ok := err != nil && !remote.IsTransientAuthError(err) && !strings.Contains(err.Error(), "unexpected status code")
	add(check{Endpoint: "PUT /update", Pod: pod.Name, Call: "InstanceClient.UpgradeInstanceManager (if it were called)",
		Expectation: "an error naming the refusal (not 200, not a dropped connection the operator reads as success, not a transient 503)",
		Answer:      describe(err), OK: ok})
}

func probeChecks(ctx context.Context, req endpointsRequest, pods []corev1.Pod, add func(check)) {
	scheme := remote.GetStatusSchemeFromPod(&pods[0]).ToString()
	// The kubelet does not verify the serving certificate.
	kubelet := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec
	for _, pod := range pods {
		for _, path := range []string{url.PathHealth, url.PathReady, url.PathStartup} {
			code, body, err := get(kubelet, url.Build(scheme, pod.Status.PodIP, path, url.StatusPort))
			add(check{Endpoint: "GET " + path, Pod: pod.Name, Call: "kubelet probe (" + scheme + ")",
				Expectation: "200 (OK or Skipped)", Answer: fmt.Sprintf("%d %q %s", code, strings.TrimSpace(body), errText(err)),
				OK: err == nil && code == http.StatusOK})
		}
	}
	// The liveness isolation check pings every instance's /failsafe over https with the server CA.
	ca, err := os.ReadFile(req.CAFile)
	if err != nil {
		return
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	pinger := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: certs.NewTLSConfigFromCertPool(pool)}}
	for _, pod := range pods {
		code, body, err := get(pinger, url.Build("https", pod.Status.PodIP, url.PathFailSafe, url.StatusPort))
		add(check{Endpoint: "GET /failsafe", Pod: pod.Name, Call: "liveness pinger (https, server CA)",
			Expectation: "200 OK", Answer: fmt.Sprintf("%d %q %s", code, strings.TrimSpace(body), errText(err)),
			OK: err == nil && code == http.StatusOK && strings.TrimSpace(body) == "OK"})
	}
	_ = ctx
}

func get(c *http.Client, u string) (int, string, error) {
	res, err := c.Get(u)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return res.StatusCode, string(body), err
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return "err=" + err.Error()
}

func jsonOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
