/**
 * The local launcher: `bulwark up` (the whole mesh as supervised processes on one machine) and
 * `bulwark serve <service>` (one service in the foreground, as containers run it).
 */
export {
  createSupervisor,
  Supervisor,
  type ProcessSpec,
  type SupervisorEvent,
  type SupervisorOptions,
} from './supervisor.ts';
export { LauncherError, type LauncherErrorCode } from './launcher-error.ts';
export {
  isLoopbackUrl,
  planMesh,
  stateLayout,
  type DemoIdpPlan,
  type MeshPlan,
  type PlanOptions,
  type StateLayout,
} from './plan.ts';
export { renderRunConfig, toConfigFile } from './run-config.ts';
export { ensureState, renewCertificates, PARTNER_CLIENT, type MeshState } from './state.ts';
export { brokerLaunchOptions, CLI_CLIENT_ID } from './broker-options.ts';
export {
  ENTRY_POINTS,
  planServe,
  resolveCertsDir,
  serve,
  SERVE_TARGETS,
  type ServeOptions,
  type ServePlan,
  type ServeTarget,
} from './serve.ts';
export { startMesh, type RunningMesh, type RunningService, type UpOptions } from './up.ts';
export { renderSummary } from './summary.ts';
export { grpcHealthProbe, httpsProbe, meshProbe, probeIdentity, type Probe } from './probes.ts';
export { assertPortsFree, listenersOf, type Listener } from './ports.ts';
export { configEnv, isConfigVariable } from './config-env.ts';
