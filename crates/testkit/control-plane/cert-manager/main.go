// Command cert-manager-controller runs upstream cert-manager's controllers
// (github.com/cert-manager/cert-manager/pkg/controller/...) out of cluster
// against the test kit's API server. Used only by the test kit and built by
// scripts/control-plane.sh; the product is Rust.
//
// Upstream's own entry point (cmd/controller, module
// github.com/cert-manager/cert-manager/controller-binary) is a nested module
// that is not published on the Go module proxy, so this is the same wiring,
// reduced to what the tests need: one kubeconfig, the named controllers, no
// leader election, no webhook, no ACME solver, and a readiness endpoint that
// answers 200 once every informer cache has synced.
//
// Flags keep upstream's names where they exist.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"k8s.io/klog/v2"

	"github.com/cert-manager/cert-manager/pkg/controller"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"github.com/cert-manager/cert-manager/pkg/util"

	// The controllers register themselves with controller.Register.
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	_ "github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	_ "github.com/cert-manager/cert-manager/pkg/controller/issuers"
	// The issuer types the Issuer/ClusterIssuer controllers can set up.
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

// Defaults as upstream's (internal/apis/config/controller/v1alpha1/defaults.go).
const (
	defaultControllers = "issuers,clusterissuers,certificaterequests-approver," +
		"certificaterequests-issuer-selfsigned,certificaterequests-issuer-ca," +
		"certificates-trigger,certificates-key-manager,certificates-request-manager," +
		"certificates-issuing,certificates-readiness,certificates-revision-manager"
	workers = 5
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "cert-manager-controller: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the API server (required: this build runs out of cluster only)")
	controllers := flag.String("controllers", defaultControllers, "comma-separated controllers to run")
	clusterResourceNamespace := flag.String("cluster-resource-namespace", "kube-system", "namespace of the Secrets that ClusterIssuers reference")
	namespace := flag.String("namespace", "", "only watch this namespace (default: all)")
	leaderElect := flag.Bool("leader-elect", false, "must be false: leader election is not wired in this build")
	healthz := flag.String("healthz-listen-address", "127.0.0.1:9403", "address of the /readyz and /livez endpoints")
	qps := flag.Float64("kube-api-qps", 20, "client QPS towards the API server")
	burst := flag.Int("kube-api-burst", 50, "client burst towards the API server")
	version := flag.Bool("version", false, "print the cert-manager version and exit")
	klog.InitFlags(flag.CommandLine) // -v, -logtostderr, …
	flag.Parse()

	if *version {
		// AppVersion is stamped by scripts/control-plane.sh (-ldflags -X).
		fmt.Printf("cert-manager-controller %s\n", util.AppVersion)
		return nil
	}

	if *kubeconfig == "" {
		return errors.New("--kubeconfig is required")
	}
	if *leaderElect {
		return errors.New("--leader-elect=true is not supported by this build")
	}
	known := controller.Known()
	var enabled []string
	for _, name := range strings.Split(*controllers, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if _, ok := known[name]; !ok {
			names := make([]string, 0, len(known))
			for n := range known {
				names = append(names, n)
			}
			sort.Strings(names)
			return fmt.Errorf("--controllers: unknown controller %q (known: %s)", name, strings.Join(names, ","))
		}
		enabled = append(enabled, name)
	}
	if len(enabled) == 0 {
		return errors.New("--controllers: no controller named")
	}

	logf.InitLogs()
	defer logf.FlushLogs()

	rootCtx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rootCtx = logf.NewContext(rootCtx, klog.Background(), "controller")
	log := logf.FromContext(rootCtx)

	factory, err := controller.NewContextFactory(rootCtx, controller.ContextOptions{
		Kubeconfig:         *kubeconfig,
		KubernetesAPIQPS:   float32(*qps),
		KubernetesAPIBurst: *burst,
		Namespace:          *namespace,
		IssuerOptions: controller.IssuerOptions{
			ClusterResourceNamespace: *clusterResourceNamespace,
			// Upstream's default; no ambient credentials exist out of cluster anyway.
			ClusterIssuerAmbientCredentials: true,
		},
		CertificateOptions: controller.CertificateOptions{
			CopiedAnnotationPrefixes:                 []string{"*", "-kubectl.kubernetes.io/", "-fluxcd.io/", "-argocd.argoproj.io/"},
			CertificateRequestMinimumBackoffDuration: time.Hour,
		},
		SchedulerOptions: controller.SchedulerOptions{MaxConcurrentChallenges: 60},
		ACMEOptions:      controller.ACMEOptions{DNS01CheckRetryPeriod: 10 * time.Second},
	})
	if err != nil {
		return fmt.Errorf("building the controller context: %w", err)
	}

	// Construct every controller first: construction registers the informers
	// they need on the shared factories, which are started afterwards.
	ifaces := make(map[string]controller.Interface, len(enabled))
	for _, name := range enabled {
		iface, err := known[name](factory)
		if err != nil {
			return fmt.Errorf("constructing controller %s: %w", name, err)
		}
		ifaces[name] = iface
	}
	shared, err := factory.Build()
	if err != nil {
		return fmt.Errorf("building the shared context: %w", err)
	}

	var ready atomic.Bool
	listener, err := net.Listen("tcp", *healthz)
	if err != nil {
		return fmt.Errorf("--healthz-listen-address %s: %w", *healthz, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "informer caches not synced", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = server.Serve(listener) }()
	defer server.Close()

	done := rootCtx.Done()
	shared.KubeSharedInformerFactory.Start(done)
	shared.SharedInformerFactory.Start(done)
	shared.HTTP01ResourceMetadataInformersFactory.Start(done)

	errs := make(chan error, len(ifaces))
	var wg sync.WaitGroup
	for name, iface := range ifaces {
		wg.Add(1)
		go func() {
			defer wg.Done()
			log.V(logf.InfoLevel).Info("starting controller", "controller", name)
			if err := iface.Run(workers, rootCtx); err != nil {
				errs <- fmt.Errorf("controller %s: %w", name, err)
			}
		}()
	}

	for informer, ok := range shared.KubeSharedInformerFactory.WaitForCacheSync(done) {
		if !ok {
			return fmt.Errorf("cache of %s did not sync", informer)
		}
	}
	for informer, ok := range shared.SharedInformerFactory.WaitForCacheSync(done) {
		if !ok {
			return fmt.Errorf("cache of %v did not sync", informer)
		}
	}
	ready.Store(true)
	log.V(logf.InfoLevel).Info("informer caches synced; ready", "controllers", enabled)

	select {
	case err := <-errs:
		stop()
		wg.Wait()
		return err
	case <-done:
		wg.Wait()
		log.V(logf.InfoLevel).Info("control loops exited")
		return nil
	}
}
