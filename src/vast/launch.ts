/**
 * `ups launch`: the runbook's OP-001 steps 1-6 as one staged plan:
 *   plan (load + validate the config) -> preflight (estimate, budget, source) -> choose offer
 *   -> build onstart -> create -> record -> verify (--wait; rollback on failure).
 * `--dry-run` is the same pipeline stopped before `create`: read-only calls only (git, offer
 * search), nothing created, nothing recorded. Every side effect comes in through LaunchDeps.
 */
import {isAbsolute, relative, resolve} from 'node:path'

import {type UpsConfig, loadConfig, trainingConfigHash} from '../config/index.js'
import {validateConfig} from '../config/validate.js'
import type {EstimateFn} from '../pipeline/launch-estimate.js'
import {incidentDir, saveInstanceLogs, writeIncidentNote} from '../ops/preserve.js'
import {newRunId} from '../tracking/rundir.js'
import {ExitCode, UserError} from '../util/errors.js'
import {destroyWithRetry, waitForLogLine, waitForStatus} from './lifecycle.js'
import {type GitRunner, type LaunchSource, parseSourceSpec, resolveLaunchSource} from './launch-source.js'
import {type OfferFilters, cheapestOffers} from './offers.js'
import {type OnstartScript, buildOnstartScript, checkScriptValue, shQuote} from './onstart.js'
import {type CreateInstanceRequest, type Provider, createInstanceArgs} from './provider.js'
import {type LaunchEstimate, type LaunchRecord, appendLaunchRecord, appendLaunchUpdate} from './records.js'
import {rentInstance} from './rent.js'
import type {Offer} from './types.js'

/** CUDA 11.2 + cuDNN 8.1: what tfjs-node-gpu's libtensorflow is built against. */
export const DEFAULT_IMAGE = 'nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04'
export const DEFAULT_DISK_GB = 64
/** The host driver must support the image's CUDA. */
export const MIN_CUDA = 11.2
export const TRAINING_STARTED = /Training started/
/** Secrets forwarded to the instance through the create call's environment (never the script). */
export const FORWARDED_SECRETS = ['WANDB_API_KEY'] as const
export const INSTANCE_ENV = {NVIDIA_DRIVER_CAPABILITIES: 'compute,utility,graphics'}
/** Offers tried when the cheapest is taken between the search and the create (404 no_such_ask). */
export const MAX_OFFER_TRIES = 3

export interface LaunchOptions {
  configPath: string
  overrides?: string[]
  gpu?: string
  maxPrice?: number
  offerId?: number
  image?: string
  diskGb?: number
  autoShutdown: boolean
  runArgs?: string[]
  /** git:URL#REF; default this checkout's origin at HEAD. */
  source?: string
  data?: string[]
  label?: string
  budgetUsd?: number
  wait?: boolean
  waitTimeoutMs?: number
  waitIntervalMs?: number
  allowDirty?: boolean
  watchdog?: boolean
  dryRun?: boolean
  /** Extra offer constraints, over the config's (ups recover passes the old launch's). */
  filters?: Partial<OfferFilters>
  /** ups recover: resume this run on the new instance, linked to the old launch. */
  resume?: {runId: string; from: {instance_id: number; run_id: string}; restoreWait?: boolean}
}

export interface LaunchDeps {
  provider: Provider
  git: GitRunner
  estimate: EstimateFn
  now: () => Date
  sleep: (ms: number) => Promise<void>
  randomHex: () => string
  /** Where WANDB_API_KEY (and the config's ${} interpolation) come from. */
  env: NodeJS.ProcessEnv
  cwd: string
  launchesFile: string
  /** Starts `ups watchdog ID` in the background; returns its pid. */
  spawnWatchdog?: (instanceId: number) => Promise<number>
  /** Rollback destroys: tries and first backoff (defaults 4 and 5 s, doubling). */
  destroyAttempts?: number
  destroyBackoffMs?: number
  /** Looks for the label after a create with an unknown outcome: how often and how far apart. */
  labelLookups?: number
  labelLookupIntervalMs?: number
  onStage?: (stage: LaunchStage, message: string) => void
}

export type LaunchStage = 'plan' | 'preflight' | 'offer' | 'onstart' | 'create' | 'record' | 'verify' | 'watchdog'

export interface LaunchResult {
  dryRun: boolean
  runId: string
  instanceId: number | null
  configPath: string
  configHash: string
  offer: Offer
  estimate: LaunchEstimate & {offerUsd: number}
  budgetUsd: number | null
  source: {gitUrl: string; ref: string; dirty: boolean; from: LaunchSource['from']}
  image: string
  diskGb: number
  label: string
  /** Names only: the values are secrets or not interesting. */
  envKeys: string[]
  /** The vastai command line, env values masked, script elided (it is in `onstart`). */
  command: string
  onstart: OnstartScript
  recordPath: string | null
  verified: {status: string; line: string} | null
  watchdogPid: number | null
  warnings: string[]
}

const usd = (x: number) => `$${x.toFixed(2)}`

function overBudget(cost: number, budget: number, what: string, configPath: string): UserError {
  return new UserError(`${what} is ${usd(cost)}, over the budget of ${usd(budget)} by ${usd(cost - budget)}.`, {
    code: 'LAUNCH_OVER_BUDGET',
    hint: `Raise --budget (or vast.budget_usd in ${configPath}), rent a cheaper GPU (--gpu, --max-price), or train fewer epochs (stages.*.epochs).`,
    exitCode: ExitCode.CHECK_FAILED,
    details: {costUsd: cost, budgetUsd: budget, overByUsd: Math.round((cost - budget) * 100) / 100},
  })
}

async function planConfig(options: LaunchOptions, deps: LaunchDeps): Promise<{config: UpsConfig; warnings: string[]}> {
  const validation = await validateConfig(options.configPath, {overrides: options.overrides, noData: true, deps: {cwd: deps.cwd, env: deps.env}})
  if (!validation.valid) {
    const failed = validation.checks.filter((c) => c.status === 'fail').map((c) => `  ${c.id}: ${c.message.split('\n')[0]}`)
    throw new UserError(`Config ${options.configPath} is not ready to launch:\n${failed.join('\n')}`, {
      code: 'CONFIG_INVALID',
      hint: `Run \`ups validate ${options.configPath} --no-data\` and fix what it reports.`,
      exitCode: ExitCode.CHECK_FAILED,
    })
  }
  const loaded = await loadConfig(options.configPath, {overrides: options.overrides, deps: {cwd: deps.cwd, env: deps.env}})
  return {config: loaded.config, warnings: loaded.warnings}
}

export async function launch(options: LaunchOptions, deps: LaunchDeps): Promise<LaunchResult> {
  const stage = (s: LaunchStage, m: string) => deps.onStage?.(s, m)
  // What will go into the onstart script is refused before the (slow) estimate; the script checks it again.
  checkScriptValue('training config path', options.configPath)
  if (options.source) parseSourceSpec(options.source)
  // plan
  const {config, warnings} = await planConfig(options, deps)
  const vast = config.vast ?? {}
  const configHash = trainingConfigHash(config)
  const runId = options.resume?.runId ?? newRunId(deps.now(), deps.randomHex)
  stage('plan', `config ${options.configPath} is valid (hash ${configHash}); run ${runId}`)

  // preflight: estimate and budget before anything is searched or rented
  const gpu = options.gpu ?? options.filters?.gpu ?? vast.gpu ?? 'A100'
  const est = await deps.estimate(config, gpu, {image: options.image ?? vast.image ?? DEFAULT_IMAGE})
  const estimate: LaunchEstimate = {hours: est.hours, usd: est.usd, pricePerHour: est.pricePerHour, source: est.source ?? 'estimate'}
  const budget = options.budgetUsd ?? vast.budget_usd ?? null
  stage('preflight', `${estimate.source}: ${estimate.hours.toFixed(2)} h x ${usd(estimate.pricePerHour)}/h = ${usd(estimate.usd)}${budget === null ? '' : ` (budget ${usd(budget)})`}`)
  if (budget !== null && estimate.usd > budget) throw overBudget(estimate.usd, budget, `The ${estimate.source} (${estimate.hours.toFixed(2)} h on ${gpu})`, options.configPath)
  const source = await resolveLaunchSource({source: options.source, allowDirty: options.allowDirty ?? false}, {git: deps.git, cwd: deps.cwd})
  if (source.dirty) warnings.push('the working tree has uncommitted changes; the instance runs the committed HEAD without them')

  // choose offer
  const diskGb = options.diskGb ?? vast.disk_gb ?? DEFAULT_DISK_GB
  const filters: OfferFilters =
    options.offerId !== undefined
      ? {offerId: options.offerId}
      : {
          gpu,
          numGpus: vast.num_gpus,
          maxPrice: options.maxPrice ?? vast.max_price,
          minReliability: vast.min_reliability,
          minDiskGb: diskGb,
          minCuda: MIN_CUDA,
          ...options.filters,
          ...(options.gpu ? {gpu: options.gpu} : {}),
          ...(options.maxPrice !== undefined ? {maxPrice: options.maxPrice} : {}),
        }
  const costOn = (o: Offer) => Math.round(estimate.hours * o.dphTotal * 100) / 100
  const candidates = await cheapestOffers(deps.provider, filters, options.offerId !== undefined ? 1 : MAX_OFFER_TRIES)
  let offer = candidates[0]
  let offerUsd = costOn(offer)
  stage('offer', `offer ${offer.id}: ${offer.numGpus}x ${offer.gpuName} at ${usd(offer.dphTotal)}/h (${offer.location ?? 'unknown location'}); ~${usd(offerUsd)} for ${estimate.hours.toFixed(2)} h`)
  if (budget !== null && offerUsd > budget) throw overBudget(offerUsd, budget, `The cost on offer ${offer.id} (${estimate.hours.toFixed(2)} h x ${usd(offer.dphTotal)}/h)`, options.configPath)
  // Fallbacks must fit the budget too.
  const fallbacks = candidates.filter((o) => budget === null || costOn(o) <= budget)

  // build onstart
  const absConfig = resolve(deps.cwd, options.configPath)
  const trainConfig = source.repoRoot && !relative(source.repoRoot, absConfig).startsWith('..') ? relative(source.repoRoot, absConfig) : options.configPath
  if (isAbsolute(trainConfig)) throw new UserError(`Config ${options.configPath} is outside the repository; the instance cannot fetch it.`, {code: 'LAUNCH_CONFIG_OUTSIDE_REPO', hint: 'Commit the config to the repository and pass its path inside it.', exitCode: ExitCode.USAGE})
  const secrets = Object.fromEntries(FORWARDED_SECRETS.filter((k) => deps.env[k]).map((k) => [k, deps.env[k] as string]))
  const runArgs = options.resume ? [...(options.runArgs ?? [])] : [...(options.runArgs ?? []), `--run-id=${runId}`]
  const onstart = buildOnstartScript({
    source: {gitUrl: source.gitUrl, ref: source.ref},
    trainConfig,
    runArgs,
    data: options.data,
    autoShutdown: options.autoShutdown,
    runId,
    resumeRunId: options.resume?.runId,
    restoreWait: options.resume?.restoreWait,
    // Whatever the W&B mirror could not send during the run goes up before the instance stops.
    onExit: config.logging?.wandb?.enabled ? [['sync', options.resume?.runId ?? runId]] : [],
    secretValues: [...Object.values(secrets), ...(deps.env.VAST_API_KEY ? [deps.env.VAST_API_KEY] : [])],
  })
  // Unique per launch (a recovery reuses the run id): after a failed create it finds the instance.
  const label = options.label ?? `ups-${runId}-${deps.randomHex()}`
  const request: CreateInstanceRequest = {offerId: offer.id, image: options.image ?? vast.image ?? DEFAULT_IMAGE, diskGb, env: {...INSTANCE_ENV, ...secrets}, onstart: onstart.script, label}
  const shown = createInstanceArgs({...request, onstart: '<onstart script>'}, {maskEnv: true})
  const command = ['vastai', ...shown].map((a) => (a === '<onstart script>' ? '"$(cat onstart.sh)"' : shQuote(a))).join(' ')
  stage('onstart', `onstart script: ${onstart.length} characters${onstart.compressed ? ' (gzip+base64 packed)' : ''}`)

  const result: LaunchResult = {
    dryRun: Boolean(options.dryRun), runId, instanceId: null, configPath: options.configPath, configHash, offer,
    estimate: {...estimate, offerUsd}, budgetUsd: budget,
    source: {gitUrl: source.gitUrl, ref: source.ref, dirty: source.dirty, from: source.from},
    image: request.image, diskGb, label, envKeys: Object.keys(request.env ?? {}), command, onstart,
    recordPath: null, verified: null, watchdogPid: null, warnings,
  }
  if (options.dryRun) return result

  // create: one try per offer; a failed create is looked up by its label, never blindly repeated
  // (a given label may be on older instances already: those are never taken for this launch).
  const knownIds = options.label ? (await deps.provider.list()).filter((i) => i.label === label).map((i) => i.id) : []
  const rented = await rentInstance(deps.provider, {
    request: {...request, label}, offers: fallbacks, knownIds, sleep: deps.sleep,
    lookups: deps.labelLookups, lookupIntervalMs: deps.labelLookupIntervalMs,
    onNote: (m) => stage('create', m),
  })
  const id = rented.id
  if (rented.offer.id !== offer.id) {
    offer = rented.offer
    offerUsd = costOn(offer)
    result.offer = offer
    result.estimate.offerUsd = offerUsd
  }
  result.instanceId = id
  if (rented.note) result.warnings.push(rented.note)
  stage('create', `${rented.adopted ? 'adopted' : 'created'} instance ${id}`)

  // record: the runbook's "Document" step
  const record: LaunchRecord = {
    kind: 'launch', instance_id: id, run_id: runId, config_path: options.configPath, config_abs_path: absConfig, config_hash: configHash,
    offer: {id: offer.id, gpu_name: offer.gpuName, num_gpus: offer.numGpus, dph_total: offer.dphTotal, location: offer.location},
    dph_total: offer.dphTotal, estimate, started_at: deps.now().toISOString(), label,
    source: {git_url: source.gitUrl, ref: source.ref, dirty: source.dirty}, image: request.image, disk_gb: diskGb,
    auto_shutdown: options.autoShutdown, run_args: options.runArgs ?? [], data: options.data ?? [],
    filters: {...filters},
    ...(options.resume ? {recovered_from: options.resume.from, resume: true} : {}),
    ...(rented.note ? {create_note: rented.note} : {}),
    ...(rented.adopted ? {adopted: true} : {}),
  }
  try {
    await appendLaunchRecord(deps.launchesFile, record)
  } catch (error) {
    // Unrecorded means unwatched and uncounted: give the instance back rather than leave it billing.
    const gone = await destroyWithRetry(deps.provider, id, destroyOptions(deps))
    throw new UserError(
      `Instance ${id} was rented but could not be recorded (${(error as Error).message}); ${gone.destroyed ? 'it was destroyed' : `destroying it FAILED (${gone.error}); it may still be billing`}.`,
      {
        code: 'LAUNCH_RECORD_FAILED',
        hint: gone.destroyed ? `Fix the launch record file (${deps.launchesFile}) and launch again.` : `Destroy it by hand: ups instances destroy ${id} --yes`,
        exitCode: ExitCode.EXTERNAL,
        cause: error,
        details: {instanceId: id, destroyed: gone.destroyed},
      },
    )
  }
  result.recordPath = deps.launchesFile
  stage('record', `recorded in ${deps.launchesFile}`)
  await dropExtras(rented.extras.map((x) => x.id), record, deps, (m) => result.warnings.push(m))

  if (options.wait) result.verified = await verifyOrRollBack(id, runId, options, deps)
  if (options.watchdog && deps.spawnWatchdog) {
    result.watchdogPid = await deps.spawnWatchdog(id)
    await appendLaunchUpdate(deps.launchesFile, {instance_id: id, at: deps.now().toISOString(), watchdog_pid: result.watchdogPid})
    stage('watchdog', `watchdog running in the background (pid ${result.watchdogPid})`)
  }
  return result
}

/** --wait: running, then "Training started" in the log, within one timeout; else save logs and destroy. */
async function verifyOrRollBack(id: number, runId: string, options: LaunchOptions, deps: LaunchDeps): Promise<{status: string; line: string}> {
  const clock = () => deps.now().getTime()
  const timeoutMs = options.waitTimeoutMs ?? 15 * 60_000
  const deadline = clock() + timeoutMs
  const common = {sleep: deps.sleep, now: clock, intervalMs: options.waitIntervalMs ?? 15_000}
  try {
    const inst = await waitForStatus(deps.provider, id, 'running', {...common, timeoutMs})
    deps.onStage?.('verify', `instance ${id} is running; waiting for "Training started" in its log`)
    const line = await waitForLogLine(deps.provider, id, TRAINING_STARTED, {...common, timeoutMs: Math.max(0, deadline - clock())})
    deps.onStage?.('verify', `training started on instance ${id}`)
    return {status: inst.status ?? 'running', line}
  } catch (error) {
    if (!(error instanceof UserError)) throw error
    const reason = error.message
    const dir = incidentDir(deps.cwd, deps.now(), id)
    const saved = await saveInstanceLogs(deps.provider, id, {dir, env: deps.env})
    const gone = await destroyWithRetry(deps.provider, id, destroyOptions(deps))
    const destroyed = gone.destroyed
    const destroyError = gone.error
    await writeIncidentNote(dir, {what: 'launch rolled back', instance_id: id, run_id: runId, reason, at: deps.now().toISOString(), logs: saved.logPath, log_error: saved.error ?? null, destroyed, destroy_error: destroyError ?? null})
    await appendLaunchUpdate(deps.launchesFile, {
      instance_id: id, at: deps.now().toISOString(), status: destroyed ? 'rolled_back' : 'rollback_failed', status_reason: reason,
      ...(destroyed ? {destroyed_by: 'launch rollback'} : {}),
    })
    const logs = saved.logPath ? `logs saved to ${relative(deps.cwd, saved.logPath)}` : `logs could not be saved (${saved.error})`
    throw new UserError(`Launch of run ${runId} failed verification: ${reason} Rolled back: ${logs}; ${destroyed ? `instance ${id} destroyed` : `destroying instance ${id} FAILED (${destroyError}); it may still be billing`}.`, {
      code: destroyed ? 'LAUNCH_ROLLED_BACK' : 'LAUNCH_ROLLBACK_FAILED',
      hint: destroyed ? `Read the saved log, fix the cause, and launch again.` : `Destroy it by hand: ups instances destroy ${id} --yes`,
      exitCode: destroyed ? ExitCode.CHECK_FAILED : ExitCode.EXTERNAL,
      cause: error,
      details: {instanceId: id, runId, logPath: saved.logPath, incidentDir: dir, reasonCode: error.code},
    })
  }
}

/** The rollback destroy's retry settings from a launch's (or recover's) deps. */
export function destroyOptions(deps: Pick<LaunchDeps, 'sleep' | 'destroyAttempts' | 'destroyBackoffMs'>) {
  return {sleep: deps.sleep, attempts: deps.destroyAttempts, backoffMs: deps.destroyBackoffMs}
}

/**
 * Instances found with this launch's label beyond the one kept (the same create went through
 * twice): each is recorded first (so cost counts it even if ups dies now), then destroyed.
 */
async function dropExtras(ids: number[], record: LaunchRecord, deps: LaunchDeps, warn: (m: string) => void): Promise<void> {
  for (const extra of ids) {
    await appendLaunchRecord(deps.launchesFile, {...record, instance_id: extra, adopted: true, create_note: `a second instance with label ${record.label} (kept ${record.instance_id})`})
    const gone = await destroyWithRetry(deps.provider, extra, destroyOptions(deps))
    const at = deps.now().toISOString()
    const reason = `duplicate of instance ${record.instance_id} (same label)`
    await appendLaunchUpdate(deps.launchesFile, {instance_id: extra, at, status: gone.destroyed ? 'rolled_back' : 'rollback_failed', status_reason: reason, ...(gone.destroyed ? {destroyed_by: 'launch rollback'} : {})})
    warn(gone.destroyed ? `instance ${extra} also carried this launch's label and was destroyed` : `instance ${extra} also carries this launch's label and could not be destroyed (${gone.error}): ups instances destroy ${extra} --yes`)
  }
}

export function renderLaunch(r: LaunchResult): string {
  const lines: string[] = []
  if (r.dryRun) {
    lines.push('Dry run: nothing was created or recorded.', '', 'Command:', `  ${r.command}`, '', 'Onstart script:', r.onstart.plain.trimEnd(), '')
  }
  lines.push(
    `Run id:      ${r.runId}`,
    `Instance:    ${r.instanceId ?? '(not created)'}`,
    `Offer:       ${r.offer.id} (${r.offer.numGpus}x ${r.offer.gpuName}, $${r.offer.dphTotal.toFixed(4)}/h, ${r.offer.location ?? '-'})`,
    `Estimate:    ${r.estimate.hours.toFixed(2)} h, ~$${r.estimate.offerUsd.toFixed(2)} on this offer (${r.estimate.source}: $${r.estimate.usd.toFixed(2)})${r.budgetUsd === null ? '' : `, budget $${r.budgetUsd.toFixed(2)}`}`,
    `Source:      ${r.source.gitUrl} @ ${r.source.ref}${r.source.dirty ? ' (local tree dirty)' : ''}`,
    `Image/disk:  ${r.image}, ${r.diskGb} GB`,
  )
  if (r.verified) lines.push(`Verified:    ${r.verified.status}; "${r.verified.line.trim()}"`)
  if (r.watchdogPid !== null) lines.push(`Watchdog:    pid ${r.watchdogPid}`)
  if (r.recordPath) lines.push(`Recorded in: ${r.recordPath}`)
  for (const w of r.warnings) lines.push(`Warning: ${w}`)
  if (r.instanceId !== null) lines.push('', `Next: ups monitor ${r.instanceId}`)
  return lines.join('\n')
}
