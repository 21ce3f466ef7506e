/**
 * The W&B mirror of a run directory. The run directory stays the source of truth; W&B gets a
 * copy when it is enabled, a key is set and WANDB_MODE allows it. Otherwise nothing here
 * touches the network. Network failures never reach the training loop: rows queue in
 * wandb/queue.jsonl and are retried with backoff; `syncRun` finishes the job later.
 */
import {readdir} from 'node:fs/promises'
import {join} from 'node:path'

import {ExitCode, UserError} from '../util/errors.js'
import {
  JsonlAppender,
  readHistory,
  readMetadata,
  readResolvedConfigText,
  readSummary,
  type HistoryRecord,
  type RunDir,
} from './rundir.js'
import {withRunDirLock} from './rundir-lock.js'
import {WandbRequestError, type RemoteRun} from './wandb-client.js'
import {
  newWandbState,
  readQueue,
  readWandbState,
  wandbInactiveReason,
  wandbPaths,
  wandbSettingsFromConfig,
  type WandbRunInfo,
  type WandbSettings,
  type WandbState,
} from './wandb-state.js'
import {Uploader, backoffMs, clientFor, lastValues, wandbFileName, type PassStats, type WandbDeps} from './wandb-upload.js'

export type {WandbDeps} from './wandb-upload.js'
export type {WandbRunInfo, WandbSettings, WandbState} from './wandb-state.js'
export {wandbInactiveReason, wandbSettingsFromConfig, readWandbRunInfo} from './wandb-state.js'

export interface MirrorStartOptions {
  /** The resolved config to record on the run (default: config.resolved.yaml). */
  config?: Record<string, unknown>
  /** Also write the run info here (e.g. artifacts/wandb_run.json for the latest run). */
  pointerPath?: string
}

export interface MirrorStatus {
  active: boolean
  /** Why the mirror is off (no key, offline, disabled ...). */
  reason?: string
  run?: WandbRunInfo
  pending?: {history: number; summary: boolean; files: number; finish: boolean}
  lastError?: string
}

export interface FinishResult extends MirrorStatus {
  /** Everything, completion included, acknowledged by W&B. */
  synced: boolean
}

export const FINISH_ATTEMPTS = 4

export class WandbMirror {
  private uploader?: Uploader
  private queue?: JsonlAppender
  private rows: Array<Record<string, unknown>> = []
  private explicitSummary: Record<string, unknown> = {}
  private startedAt = 0
  private pumping?: Promise<boolean>
  private nextAttemptAt = 0
  private reason?: string

  constructor(private readonly deps: WandbDeps) {}

  get active(): boolean {
    return this.uploader !== undefined
  }

  /** Attaches to a run directory; resumes the mirror state when the run has one. Never throws for network reasons. */
  async start(dir: RunDir, settings: WandbSettings | undefined, options: MirrorStartOptions = {}): Promise<MirrorStatus> {
    this.reason = wandbInactiveReason(settings, this.deps.env)
    if (this.reason || !settings) return {active: false, reason: this.reason}
    const previous = await readWandbState(dir)
    const state: WandbState = previous?.source === 'queue' ? previous : newWandbState(dir, settings, 'queue')
    state.finish = undefined
    state.finishAcked = false
    this.explicitSummary = state.summary ?? {}
    this.rows = (await readQueue(dir)).records
    this.queue = new JsonlAppender(wandbPaths(dir).queue, 100)
    this.startedAt = this.deps.now().getTime()
    const config = options.config ?? (await loadConfig(dir))
    this.uploader = new Uploader(dir, state, clientFor(this.deps), this.deps, this.rows, () => config, () => this.currentSummary(), options.pointerPath)
    await this.uploader.save()
    await this.pump()
    return this.status()
  }

  /** Queues one history row (locally, durably) and sends it when the network allows. */
  async log(metrics: Record<string, unknown>, step: number): Promise<void> {
    if (!this.uploader || !this.queue) return
    const now = this.deps.now().getTime()
    const row = {...metrics, _step: step, _timestamp: now / 1000, _runtime: (now - this.startedAt) / 1000}
    this.rows.push(row)
    try {
      await this.queue.append(row)
    } catch (error) {
      this.deps.logger?.warn({err: (error as Error).message}, 'could not append to wandb/queue.jsonl')
    }
    this.kick()
  }

  /** Sets summary values (last value wins), sent with the next pass. */
  async summary(values: Record<string, unknown>): Promise<void> {
    if (!this.uploader) return
    Object.assign(this.explicitSummary, values)
    this.uploader.state.summary = {...this.explicitSummary}
    await this.uploader.save()
    this.kick()
  }

  /** Queues files (absolute or relative to the run dir) for upload; outside files are ignored. */
  async uploadFiles(paths: string[]): Promise<void> {
    if (!this.uploader) return
    const state = this.uploader.state
    for (const path of paths) {
      const name = wandbFileName(this.uploader.dir, path)
      if (!name) {
        this.deps.logger?.warn({file: path}, 'only files inside the run directory are uploaded to W&B')
        continue
      }
      if (!state.filesPending.includes(name)) state.filesPending.push(name)
    }
    await this.uploader.save()
    this.kick()
  }

  /** Waits for the upload in flight (tests, and checkpoints that want a quiet network). */
  async flush(): Promise<MirrorStatus> {
    await this.pumping
    return this.status()
  }

  /** Marks the run finished (ok) or failed and tries a few times to deliver everything. */
  async finish(ok: boolean): Promise<FinishResult> {
    if (!this.uploader) return {active: false, reason: this.reason, synced: false}
    await this.queue?.close().catch(() => undefined)
    await this.pumping
    this.uploader.state.finish = {exitcode: ok ? 0 : 1}
    await this.uploader.save()
    let synced = false
    for (let attempt = 1; attempt <= FINISH_ATTEMPTS && !synced; attempt++) {
      if (attempt > 1) await this.deps.sleep(backoffMs(attempt - 1))
      synced = await this.pump(true)
    }
    return {...this.status(), synced}
  }

  status(): MirrorStatus {
    if (!this.uploader) return {active: false, reason: this.reason}
    return {active: true, run: this.uploader.info, pending: this.uploader.pending, lastError: this.uploader.state.lastError}
  }

  private currentSummary(): Record<string, unknown> {
    return {...lastValues(this.rows), ...this.explicitSummary}
  }

  /** Starts a pass in the background unless one runs or we are backing off. */
  private kick(): void {
    if (this.pumping || this.deps.now().getTime() < this.nextAttemptAt) return
    void this.pump()
  }

  private async pump(force = false): Promise<boolean> {
    if (!this.uploader) return false
    while (this.pumping) await this.pumping
    if (!force && this.deps.now().getTime() < this.nextAttemptAt) return false
    const uploader = this.uploader
    const stats: PassStats = {historySent: 0, summarySent: false, filesSent: [], completed: false}
    this.pumping = uploader.pass(stats).finally(() => {
      this.pumping = undefined
    })
    const ok = await this.pumping
    this.nextAttemptAt = ok ? 0 : this.deps.now().getTime() + backoffMs(uploader.state.failures)
    // Rows logged during the pass go out with the next one.
    if (ok && uploader.pending.history > 0) this.kick()
    return ok
  }
}

// ---------------------------------------------------------------- sync

export interface SyncOptions {
  /** Overrides for runs that never ran the mirror (offline): project, entity ... */
  settings?: Partial<WandbSettings>
  attempts?: number
}

export interface SyncResult {
  runId: string
  run: WandbRunInfo
  source: 'queue' | 'history'
  historyTotal: number
  historySent: number
  summarySent: boolean
  filesSent: string[]
  /** Completion state sent in this sync (undefined: the run is still running locally). */
  completed: boolean
  exitcode?: number
  attempts: number
  /** Torn lines skipped in the local history. */
  tornLines: number
}

/**
 * Uploads what W&B does not have yet: the queue of a run whose mirror failed, or the whole
 * history of an offline run. Idempotent: offsets come from the state and the server's line count.
 */
export async function syncRun(dir: RunDir, deps: WandbDeps, options: SyncOptions = {}): Promise<SyncResult> {
  // It writes wandb/state.json and the run info into the run directory, as a live run's mirror
  // does: a run being written is refused (RUNDIR_LOCKED, naming its writer); a dead one's is not.
  return withRunDirLock(dir.path, `ups sync ${dir.id}`, () => syncLocked(dir, deps, options))
}

async function syncLocked(dir: RunDir, deps: WandbDeps, options: SyncOptions): Promise<SyncResult> {
  if (!deps.env.WANDB_API_KEY) {
    throw new UserError('WANDB_API_KEY is not set, so the run cannot be uploaded.', {
      code: 'WANDB_NO_KEY',
      hint: 'Export WANDB_API_KEY (from https://wandb.ai/authorize) and run `ups sync` again.',
      exitCode: ExitCode.USAGE,
    })
  }
  const config = await loadConfig(dir)
  let state = await readWandbState(dir)
  if (!state) {
    const settings = {enabled: true, ...wandbSettingsFromConfig(config), ...stripUndefined(options.settings ?? {})}
    if (!settings.project) {
      throw new UserError(`The run ${dir.id} names no W&B project (logging.wandb.project in config.resolved.yaml).`, {
        code: 'WANDB_NO_PROJECT',
        hint: 'Pass --project (and --entity), or set logging.wandb.project in the config.',
        exitCode: ExitCode.USAGE,
      })
    }
    state = newWandbState(dir, settings, 'history')
  }
  const metadata = await readMetadata(dir).catch(() => undefined)
  let rows: Array<Record<string, unknown>>
  let tornLines: number
  if (state.source === 'queue') {
    const queue = await readQueue(dir)
    rows = queue.records
    tornLines = queue.tornLines.length
  } else {
    const history = await readHistory(dir)
    const start = Date.parse(metadata?.created_at ?? '') || undefined
    rows = history.records.map((r) => historyRow(r, start))
    tornLines = history.tornLines.length
    for (const name of await listUploadable(dir)) {
      if (!state.filesPending.includes(name)) state.filesPending.push(name)
    }
  }
  const summary = {...lastValues(rows), ...state.summary, ...(await readSummary(dir).catch(() => ({})))}
  if (!state.finish) {
    const status = metadata?.status
    if (status === 'finished') state.finish = {exitcode: 0}
    else if (status === 'failed' || status === 'stopped') state.finish = {exitcode: 1}
  }
  const uploader = new Uploader(dir, state, clientFor(deps), deps, rows, () => config, () => summary)
  const stats: PassStats = {historySent: 0, summarySent: false, filesSent: [], completed: false}
  const attempts = options.attempts ?? 5
  let ok = false
  let attempt = 0
  while (!ok && attempt < attempts) {
    if (attempt > 0) await deps.sleep(backoffMs(attempt))
    attempt++
    ok = await uploader.pass(stats)
    if (!ok && /HTTP 40[13]/.test(state.lastError ?? '')) break
  }
  if (!ok || !uploader.info) {
    const auth = /HTTP 40[13]/.test(state.lastError ?? '')
    throw new UserError(`Uploading ${dir.id} to W&B failed after ${attempt} attempt(s): ${state.lastError ?? 'unknown error'}.`, {
      code: auth ? 'WANDB_AUTH' : 'WANDB_UNREACHABLE',
      hint: auth
        ? 'Check WANDB_API_KEY and the entity/project permissions.'
        : 'What was acknowledged is recorded in the run directory; run `ups sync` again later.',
      exitCode: ExitCode.EXTERNAL,
      details: {historySent: stats.historySent, historyTotal: rows.length},
    })
  }
  return {
    runId: dir.id,
    run: uploader.info,
    source: state.source,
    historyTotal: rows.length,
    historySent: stats.historySent,
    summarySent: stats.summarySent,
    filesSent: stats.filesSent,
    completed: state.finishAcked,
    exitcode: state.finish?.exitcode,
    attempts: attempt,
    tornLines,
  }
}

/** A local history record as a W&B history row. */
export function historyRow(record: HistoryRecord, startMs?: number): Record<string, unknown> {
  const t = Date.parse(record.time)
  const row: Record<string, unknown> = {...record.metrics, _step: record.step}
  if (Number.isFinite(t)) {
    row._timestamp = t / 1000
    if (startMs !== undefined) row._runtime = Math.max(0, (t - startMs) / 1000)
  }
  return row
}

/** Files an offline run uploads: checkpoints, eval outputs (plots, results) and reports. */
async function listUploadable(dir: RunDir): Promise<string[]> {
  const out: string[] = []
  async function walk(abs: string): Promise<void> {
    let entries
    try {
      entries = await readdir(abs, {withFileTypes: true})
    } catch {
      return
    }
    for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      if (e.name.startsWith('.')) continue // atomic-write temp files and the like
      const path = join(abs, e.name)
      if (e.isDirectory()) await walk(path)
      else if (e.isFile()) {
        const name = wandbFileName(dir, path)
        if (name) out.push(name)
      }
    }
  }
  for (const sub of [dir.paths.checkpoints, dir.paths.eval, dir.paths.reports]) await walk(sub)
  return out
}

async function loadConfig(dir: RunDir): Promise<Record<string, unknown> | undefined> {
  const text = await readResolvedConfigText(dir)
  if (text === undefined) return undefined
  try {
    const {parse} = await import('yaml')
    const value = parse(text) as unknown
    return value && typeof value === 'object' ? (value as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>
}

// ---------------------------------------------------------------- read back

export interface WandbRunRead {
  entity: string
  project: string
  run: RemoteRun
  /** History rows with `step` taken from `_step`, for analyze. */
  history: Array<{step: number; metrics: Record<string, unknown>}>
}

/** Reads a run's history and summary back from W&B (`ups analyze --source wandb`). */
export async function readWandbRun(entity: string, project: string, runId: string, deps: WandbDeps): Promise<WandbRunRead> {
  if (!deps.env.WANDB_API_KEY) {
    throw new UserError('WANDB_API_KEY is not set, so W&B cannot be read.', {
      code: 'WANDB_NO_KEY',
      hint: 'Export WANDB_API_KEY, or analyze the local run directory instead.',
      exitCode: ExitCode.USAGE,
    })
  }
  let run: RemoteRun | undefined
  try {
    run = await clientFor(deps).readRun(entity, project, runId)
  } catch (error) {
    const status = error instanceof WandbRequestError ? error.status : undefined
    throw new UserError(`Reading ${entity}/${project}/${runId} from W&B failed: ${(error as Error).message}.`, {
      code: status === 401 || status === 403 ? 'WANDB_AUTH' : 'WANDB_UNREACHABLE',
      hint: 'Check WANDB_API_KEY, WANDB_BASE_URL and the network.',
      exitCode: ExitCode.EXTERNAL,
    })
  }
  if (!run) {
    throw new UserError(`W&B has no run ${entity}/${project}/${runId}.`, {
      code: 'WANDB_RUN_NOT_FOUND',
      hint: 'Check the entity, project and run id (see wandb_run.json in the run directory).',
      exitCode: ExitCode.USAGE,
    })
  }
  const history = run.history.map((row) => {
    const metrics: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(row)) if (!k.startsWith('_')) metrics[k] = v
    return {step: Number(row._step), metrics}
  })
  return {entity, project, run, history}
}
