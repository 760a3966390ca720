package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/iambilly/billy/adapters/emr"
	"github.com/iambilly/billy/adapters/hl7v2"
	"github.com/iambilly/billy/apps/review"
	"github.com/iambilly/billy/fhir/audit"
	"github.com/iambilly/billy/fhir/bulk"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/fhir/rest"
	"github.com/iambilly/billy/fhir/store"
	"github.com/iambilly/billy/internal/blob"
	"github.com/iambilly/billy/internal/config"
	"github.com/iambilly/billy/internal/crypto"
	"github.com/iambilly/billy/internal/httpguard"
	"github.com/iambilly/billy/internal/logging"
	"github.com/iambilly/billy/internal/pg"
	"github.com/iambilly/billy/migrations"
	"github.com/iambilly/billy/pipeline"
	"github.com/iambilly/billy/pipeline/codes"
	"github.com/iambilly/billy/pipeline/stt"
	"github.com/iambilly/billy/smart"
)

// app is one wired Billy process.
type app struct {
	cfg   *config.Config
	log   *slog.Logger
	pool  *pgxpool.Pool
	redis *redis.Client
	store *store.Store
	api   *rest.Server
	reg   *prometheus.Registry
	smart *smart.Server // nil with authorization disabled
	blobs blob.Store    // nil without a master key
	// keyring is the master keyring (nil without a master key), shared by the blob store and SMART
	// and swapped in place when BILLY_MASTER_KEY_FILE changes (keys.go).
	keyring *crypto.Keyring
	pipe    *pipeline.Pipeline
	// exports runs Bulk Data exports (nil without a blob store).
	exports *bulk.Service
	// emr syncs from and writes back to connected EMRs (adapters/emr).
	emr *emr.Service
	// audit is the audit trail (nil with BILLY_AUDIT=off, dev only).
	audit *audit.Log
}

// loadConfig reads the environment and applies the flags common to the commands.
func loadConfig(ctx context.Context, env config.Lookuper) (*config.Config, error) {
	return config.Load(ctx, env)
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	return logging.New(w, logging.ParseLevel(cfg.LogLevel))
}

// newApp connects to PostgreSQL and Redis, applies migrations and builds the API.
func newApp(ctx context.Context, cfg *config.Config, log *slog.Logger) (*app, error) {
	pool, err := pg.Connect(ctx, cfg.DatabaseURL, cfg.DBMaxConns)
	if err != nil {
		return nil, fmt.Errorf("database (BILLY_DATABASE_URL): %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	ropt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		pool.Close()
		return nil, errors.New("BILLY_REDIS_URL cannot be parsed")
	}
	if _, err := asynq.ParseRedisURI(cfg.RedisURL); err != nil {
		pool.Close()
		return nil, errors.New("BILLY_REDIS_URL cannot be parsed for the pipeline queue")
	}
	validator, err := resource.NewValidator()
	if err != nil {
		pool.Close()
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	pipe := &pipeline.Pipeline{Pool: pool, Validate: validator.Validate, Base: cfg.FHIRBase(), Log: log, Codes: codes.NewStore(pool)}
	emrSvc := newEMRService(pool, cfg, log, validator.Validate)
	st := store.New(pool, store.WithBase(cfg.FHIRBase()), store.WithHooks(pipeline.Hook{P: pipe}, emr.Hook{S: emrSvc},
		hl7v2.DFTHook{Enabled: cfg.DFTAddr != "", Enqueue: pipeline.Enqueue}, rest.AuditHook{}))
	pipe.Store = st
	emrSvc.Store = st
	if rebuilt, err := st.EnsureIndex(ctx, nil); err != nil {
		pool.Close()
		return nil, fmt.Errorf("search index: %w", err)
	} else if rebuilt {
		log.Info("rebuilt the search index for the current extraction rules")
	}
	a := &app{cfg: cfg, log: log, pool: pool, redis: redis.NewClient(ropt), store: st, reg: reg, pipe: pipe, emr: emrSvc}
	a.startAudit()
	if cfg.MasterKey != "" {
		if a.keyring, err = crypto.ParseKeyring(cfg.MasterKey); err != nil {
			a.Close()
			return nil, err
		}
	}
	var auth rest.Authorizer = rest.AllowAll{}
	if !cfg.AuthDisabled() {
		if a.smart, err = a.newSMART(ctx); err != nil {
			a.Close()
			return nil, err
		}
		auth = smart.Authorizer{}
	}
	restCfg := rest.Config{
		Base: cfg.FHIRBase(), MaxBodyBytes: cfg.MaxBodyBytes, MaxBundleEntries: cfg.MaxBundleEntries,
		SoftwareName: "Billy", SoftwareVersion: version, OAuth: a.oauthURLs(), MaxBinaryBytes: cfg.MaxBinaryBytes,
		Operations: pipe.Operations(), StatementTimeout: cfg.StatementTimeout,
		MaxSearchClauses: cfg.SearchMaxClauses, MaxSearchValues: cfg.SearchMaxValues,
	}
	if a.keyring != nil {
		if a.blobs, err = blob.NewFS(filepath.Join(cfg.DataDir, "blobs"), a.keyring); err != nil {
			a.Close()
			return nil, fmt.Errorf("blob store (BILLY_DATA_DIR): %w", err)
		}
		restCfg.Blobs = a.blobs
		pipe.Blobs = a.blobs
		emrSvc.Registry.Keys = a.keyring
	} else {
		log.Warn("no BILLY_MASTER_KEY: Binary content (encounter audio) cannot be stored")
	}
	if a.exports = a.newExports(); a.exports != nil {
		restCfg.Exports = a.exports
		pipe.Jobs = map[string]func(context.Context, []byte) error{taskExport: a.runExport}
	}
	a.addEMRJobs()
	if a.smart != nil {
		restCfg.Requester = requester
	}
	restCfg.Operations = append(restCfg.Operations, a.x12Service(validator.Validate).Operations()...)
	if a.audit != nil {
		restCfg.Audit, restCfg.Agent = *a.audit, agentOf
		pipe.Audit = *a.audit
		emrSvc.Audit = *a.audit
	}
	a.api = rest.New(restCfg, st, validator, auth, log, reg)
	if err := pipe.InstallDefinitions(ctx); err != nil {
		a.Close()
		return nil, fmt.Errorf("definitions: %w", err)
	}
	if err := pipe.InstallCodeSystems(ctx); err != nil {
		a.Close()
		return nil, fmt.Errorf("code systems: %w", err)
	}
	return a, nil
}

// oauthURLs are the endpoints the CapabilityStatement advertises (SMART's oauth-uris extension).
func (a *app) oauthURLs() *rest.OAuthURLs {
	if a.smart == nil {
		return nil
	}
	base := a.cfg.BaseURL + "/oauth2"
	return &rest.OAuthURLs{Authorize: base + "/authorize", Token: base + "/token", Introspect: base + "/introspect", Revoke: base + "/revoke"}
}

func (a *app) Close() {
	if a.audit != nil {
		a.audit.W.Close()
	}
	_ = a.redis.Close()
	a.pool.Close()
}

func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	return migrations.Apply(ctx, conn.Conn())
}

// handler is the whole HTTP surface: /fhir, health, readiness and metrics.
func (a *app) handler() http.Handler {
	mux := http.NewServeMux()
	fhirAPI := http.StripPrefix("/fhir", a.api.Handler())
	if a.smart != nil {
		fhirAPI = a.smart.CORS(a.smart.Verifier().Middleware(a.guardClient(fhirAPI)))
		oauth := a.smart.Handler()
		mux.Handle("/oauth2/", oauth)
		mux.Handle("/.well-known/openid-configuration", oauth)
		mux.Handle("/fhir/.well-known/", oauth)
	}
	a.mountEMR(mux)
	mux.Handle(review.Path, review.Handler(review.Config{FHIRBase: a.cfg.FHIRBase()}))
	mux.Handle("/fhir/", fhirAPI)
	mux.Handle("/fhir", fhirAPI)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("GET /readyz", a.ready)
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}))
	return a.guard(mux)
}

// ready answers 200 when PostgreSQL and Redis both answer within a second.
func (a *app) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	dbErr := a.pool.Ping(ctx)
	redisErr := a.redis.Ping(ctx).Err()
	w.Header().Set("Content-Type", "application/json")
	if dbErr != nil || redisErr != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	state := func(err error) string {
		if err != nil {
			return "down"
		}
		return "up"
	}
	fmt.Fprintf(w, `{"database":%q,"redis":%q}`, state(dbErr), state(redisErr))
}

// serveHTTP serves on ln until ctx ends, then shuts down gracefully: no new connections, in-flight
// requests get up to 25 s.
func (a *app) serveHTTP(ctx context.Context, ln net.Listener) error {
	// No ReadTimeout: request bodies get a deadline that grows as they arrive (guard.go).
	srv := &http.Server{
		Handler:           a.handler(),
		ReadHeaderTimeout: a.cfg.HTTPHeaderTimeout,
		IdleTimeout:       a.cfg.HTTPIdleTimeout,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	if a.cfg.TLSEnabled() {
		tc, err := httpguard.ServerTLS(a.cfg.TLSCertFile, a.cfg.TLSKeyFile)
		if err != nil {
			return err
		}
		srv.TLSConfig = tc
	}
	errc := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			errc <- srv.ServeTLS(ln, "", "") // certificates from TLSConfig; negotiates HTTP/2 too
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	a.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 25*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// serveOptions are the flags of billy serve.
type serveOptions struct {
	addr   string
	worker bool
}

func serveFlags(fs *flag.FlagSet) *serveOptions {
	o := &serveOptions{}
	fs.StringVar(&o.addr, "addr", "", "listen address (default BILLY_ADDR)")
	fs.BoolVar(&o.worker, "worker", true, "also run the pipeline worker in this process")
	return o
}

func serveCmd(ctx context.Context, args []string, env config.Lookuper, _, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	opt := serveFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see billy serve --help)", fs.Arg(0))
	}
	cfg, err := loadConfig(ctx, env)
	if err != nil {
		return err
	}
	if opt.addr != "" {
		cfg.Addr = opt.addr
	}
	log := newLogger(cfg, stderr)
	if cfg.AuthDisabled() {
		log.Warn("AUTHORIZATION IS DISABLED (BILLY_AUTH=none, BILLY_DEV=1): every client can read and write everything; never run like this with real data")
	}
	log.Info("starting", "config", cfg)
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	log.Info("listening", "addr", ln.Addr().String(), "fhir_base", cfg.FHIRBase())
	if cfg.PprofAddr != "" {
		go servePprof(ctx, cfg.PprofAddr, log)
	}
	return a.serve(ctx, ln, opt.worker, env)
}

// serve serves the API on ln, with the pipeline worker (worker) or only the outbox relay, until ctx
// ends or one of them fails.
func (a *app) serve(ctx context.Context, ln net.Listener, worker bool, env config.Lookuper) error {
	g, gctx := errgroup.WithContext(ctx)
	if err := a.runMLLP(gctx, g); err != nil {
		return err
	}
	g.Go(func() error {
		if worker {
			return a.runWorker(gctx, env)
		}
		return a.pipe.RunRelay(gctx, a.workerConfig())
	})
	g.Go(func() error { return a.serveHTTP(gctx, ln) })
	g.Go(func() error { return a.watchKeys(gctx, env) })
	a.maintainExports(gctx, g)
	a.runEMR(gctx, g)
	return g.Wait()
}

// maintainExports runs the exports' maintenance (expiry, orphaned jobs) in g.
func (a *app) maintainExports(ctx context.Context, g *errgroup.Group) {
	if a.exports != nil {
		g.Go(func() error { return a.exports.RunMaintenance(ctx, exportMaintenance) })
	}
}

func (a *app) workerConfig() pipeline.WorkerConfig {
	ropt, _ := asynq.ParseRedisURI(a.cfg.RedisURL) // parsed by newApp already
	return pipeline.WorkerConfig{Redis: ropt, Concurrency: a.cfg.WorkerConcurrency, MaxRetry: 8, Queue: a.cfg.PipelineQueue, ReplayAfter: a.cfg.ReplayAfter}
}

// runWorker loads the speech-to-text engine and runs the pipeline's stages until ctx ends. Without
// an engine the worker still runs: transcription runs fail saying what to configure.
func (a *app) runWorker(ctx context.Context, env config.Lookuper) error {
	if a.pipe.Blobs == nil {
		a.log.Warn("pipeline worker without BILLY_MASTER_KEY: audio cannot be read, transcription runs will fail")
	}
	sttCfg, err := stt.LoadConfig(ctx, env)
	if err != nil {
		return err
	}
	if a.pipe.NewCoder, err = newCoderFunc(a, env); err != nil {
		return err
	}
	if engine, err := stt.New(sttCfg); err != nil {
		a.pipe.STTErr = err
		a.log.Warn("pipeline worker: no speech-to-text engine", "reason", err.Error())
	} else {
		defer stt.Close(engine)
		a.pipe.STT = engine
		a.log.Info("pipeline worker: speech-to-text", "engine", engine.Info().Name, "config", sttCfg)
	}
	return a.pipe.RunWorker(ctx, a.workerConfig())
}

// servePprof exposes net/http/pprof on a separate, opt-in listener (BILLY_PPROF_ADDR), never on the
// public one.
func servePprof(ctx context.Context, addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	log.Warn("pprof enabled", "addr", addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("pprof", "error", err.Error())
	}
}

// openApp reads the configuration and wires an app, for the commands that are not serve.
func openApp(ctx context.Context, env config.Lookuper, stderr io.Writer) (*app, error) {
	cfg, err := loadConfig(ctx, env)
	if err != nil {
		return nil, err
	}
	return newApp(ctx, cfg, newLogger(cfg, stderr))
}

func workerCmd(ctx context.Context, _ []string, env config.Lookuper, _, stderr io.Writer) error {
	a, err := openApp(ctx, env, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	a.log.Info("pipeline worker starting", "concurrency", a.cfg.WorkerConcurrency)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.runWorker(gctx, env) })
	g.Go(func() error { return a.watchKeys(gctx, env) })
	a.maintainExports(gctx, g)
	return g.Wait()
}

func migrateCmd(ctx context.Context, _ []string, env config.Lookuper, _, stderr io.Writer) error {
	cfg, err := loadConfig(ctx, env)
	if err != nil {
		return err
	}
	pool, err := pg.Connect(ctx, cfg.DatabaseURL, 2)
	if err != nil {
		return fmt.Errorf("database (BILLY_DATABASE_URL): %w", err)
	}
	defer pool.Close()
	if err := migrate(ctx, pool); err != nil {
		return err
	}
	newLogger(cfg, stderr).Info("migrations applied")
	return nil
}
