/**
 * `ups incident INSTANCE` (runbook INC-001) in one idempotent command: save the instance's log,
 * try to copy its checkpoints off, stop it (never destroy), classify the root cause from the
 * log, and write incidents/<ts>_<id>/{instance.log, report.md, classification.json, incident.json}.
 * A second run on the same instance reuses the newest folder for it: the log is refreshed,
 * checkpoints already copied are kept, and an instance already stopped is not stopped again.
 * Everything written is redacted (src/util/secrets.ts) and owner-only (0600 in a 0700 folder):
 * an instance's log can print its environment, API keys included.
 */
import {mkdir, readdir, readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {parse as parseYaml} from 'yaml'

import {ExitCode, UserError, isUserError} from '../util/errors.js'
import {writeFileAtomic, writeJsonAtomic} from '../util/fs.js'
import {redactJson, redactLines, redactSecrets} from '../util/secrets.js'
import type {Instance, Provider} from '../vast/index.js'
import {findLaunchRecord, readLaunchRecords} from './launch-records.js'
import {classifyLog, type LogClassification} from './log-classify.js'
import {renderIncidentReport} from './incident-render.js'

export interface CopyRequest {
  sshUrl: string
  remotePath: string
  localDir: string
}
export type CopyOutcome = {ok: true; files: number} | {ok: false; reason: string}
/** Copies a folder off an instance over SSH (scp in real life; a fake in tests). */
export type CheckpointCopier = (request: CopyRequest) => Promise<CopyOutcome>

export interface IncidentOptions {
  instanceId: number
  runId?: string
  /** Where incident folders go (default incidents). */
  incidentsRoot: string
  runsRoot: string
  launchRecords?: string
  /** The project folder on the instance (the onstart default). */
  remoteWorkdir?: string
  /** Open a new folder even if one exists for this instance. */
  newIncident?: boolean
}

export interface IncidentDeps {
  provider: Pick<Provider, 'show' | 'logs' | 'stop' | 'sshUrl'>
  copyCheckpoints: CheckpointCopier
  now: () => Date
  /** Whose secret values are redacted (default process.env); names and key shapes always are. */
  env?: NodeJS.ProcessEnv
}

export interface IncidentState {
  instance_id: number
  run_id?: string
  opened_at: string
  updated_at: string
  /** How many times `ups incident` ran on this folder. */
  invocations: number
  status_before?: string | null
  log: {saved: boolean; lines: number; bytes: number; at?: string; error?: string}
  checkpoints: {status: 'copied' | 'failed' | 'impossible'; reason?: string; files?: number; remote_path?: string; at: string}
  stop: {status: 'stopped' | 'already-stopped' | 'gone' | 'failed'; at: string; error?: string}
}

export interface IncidentResult {
  folder: string
  reused: boolean
  instanceId: number
  runId?: string
  state: IncidentState
  classification: LogClassification
  files: {log: string; report: string; classification: string; state: string}
}

export const DEFAULT_REMOTE_WORKDIR = '/workspace/ups'

/** `20250301T101500Z`: sortable and safe in a folder name. */
export function incidentStamp(now: Date): string {
  return now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z')
}

async function latestFolder(root: string, id: number): Promise<string | undefined> {
  let names: string[] = []
  try {
    names = await readdir(root)
  } catch {
    return undefined
  }
  const mine = names.filter((n) => new RegExp(`^\\d{8}T\\d{6}Z_${id}$`).test(n)).sort()
  return mine.length ? join(root, mine[mine.length - 1]) : undefined
}

async function readJsonMaybe<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T
  } catch {
    return undefined
  }
}

export async function openIncident(options: IncidentOptions, deps: IncidentDeps): Promise<IncidentResult> {
  const id = options.instanceId
  const now = () => deps.now().toISOString()
  const existing = options.newIncident ? undefined : await latestFolder(options.incidentsRoot, id)
  const folder = existing ?? join(options.incidentsRoot, `${incidentStamp(deps.now())}_${id}`)
  const files = {log: join(folder, 'instance.log'), report: join(folder, 'report.md'), classification: join(folder, 'classification.json'), state: join(folder, 'incident.json')}
  const prior = existing ? await readJsonMaybe<IncidentState>(files.state) : undefined

  let instance: Instance | undefined
  try {
    instance = await deps.provider.show(id)
  } catch (error) {
    if (!(isUserError(error) && error.code === 'VAST_NOT_FOUND')) throw error
  }
  if (!instance && !prior) {
    throw new UserError(`Instance ${id} does not exist (destroyed or never created): there is nothing to preserve or stop.`, {
      code: 'INCIDENT_NO_INSTANCE',
      hint: 'Check the id with `ups instances list`; analyze the run locally with `ups analyze RUN`.',
      exitCode: ExitCode.USAGE,
    })
  }
  await mkdir(folder, {recursive: true, mode: 0o700})
  const env = deps.env ?? process.env
  const writeSecret = (path: string, text: string) => writeFileAtomic(path, redactSecrets(text, env), 0o600)

  // 1. Logs first: they are the evidence, and stopping may end the container's log.
  let log: IncidentState['log'] = prior?.log ?? {saved: false, lines: 0, bytes: 0}
  if (instance) {
    try {
      const lines = redactLines(await deps.provider.logs(id), env)
      if (lines.length > 0) {
        const text = lines.join('\n') + '\n'
        await writeSecret(files.log, text)
        log = {saved: true, lines: lines.length, bytes: Buffer.byteLength(text), at: now()}
      } else if (!log.saved) log = {saved: false, lines: 0, bytes: 0, at: now(), error: 'the instance returned an empty log'}
    } catch (error) {
      if (!isUserError(error)) throw error
      log = {...log, error: error.message}
    }
  }
  const savedText = log.saved ? await readFile(files.log, 'utf8').catch(() => '') : ''
  const logText = redactSecrets(savedText, env)
  // A log kept from an earlier run (when this refresh failed) may predate redaction.
  if (logText !== savedText) await writeSecret(files.log, logText)

  const records = options.launchRecords ? await readLaunchRecords(options.launchRecords) : undefined
  const runId = options.runId ?? prior?.run_id ?? (records && findLaunchRecord(records.records, id)?.run_id) ?? /\brun_\d{8}_\d{6}_[0-9a-f]{4}\b/.exec(logText)?.[0]

  // 2. Checkpoints: over SSH, so only while the instance runs; once copied, kept.
  let checkpoints: IncidentState['checkpoints']
  const workdir = options.remoteWorkdir ?? DEFAULT_REMOTE_WORKDIR
  const remotePath = runId ? `${workdir}/artifacts/runs/${runId}/checkpoints` : `${workdir}/artifacts/runs`
  if (prior?.checkpoints.status === 'copied') checkpoints = prior.checkpoints
  else if (!instance) checkpoints = {status: 'impossible', reason: 'the instance no longer exists', at: now()}
  else if (instance.status !== 'running' || instance.intendedStatus === 'stopped') {
    checkpoints = {status: 'impossible', reason: `the instance is ${instance.status ?? 'not running'} and SSH needs it running (start it with \`ups instances start ${id}\` and rerun to copy them)`, at: now()}
  } else {
    try {
      const sshUrl = await deps.provider.sshUrl(id)
      const outcome = await deps.copyCheckpoints({sshUrl, remotePath, localDir: join(folder, 'checkpoints')})
      checkpoints = outcome.ok
        ? {status: 'copied', files: outcome.files, remote_path: remotePath, at: now()}
        : {status: 'failed', reason: outcome.reason, remote_path: remotePath, at: now()}
    } catch (error) {
      if (!isUserError(error)) throw error
      checkpoints = {status: 'failed', reason: error.message, remote_path: remotePath, at: now()}
    }
  }

  // 3. Stop (never destroy), once.
  let stop: IncidentState['stop']
  if (!instance) stop = prior?.stop && prior.stop.status !== 'failed' ? prior.stop : {status: 'gone', at: now()}
  else if (instance.status === 'stopped' || instance.intendedStatus === 'stopped') {
    stop = prior?.stop?.status === 'stopped' ? prior.stop : {status: 'already-stopped', at: now()}
  } else {
    try {
      await deps.provider.stop(id)
      stop = {status: 'stopped', at: now()}
    } catch (error) {
      if (!isUserError(error)) throw error
      stop = {status: 'failed', at: now(), error: error.message}
    }
  }

  // 4. Root cause.
  const classification = classifyLog(logText, {batchSize: await batchSizeOf(options.runsRoot, runId)})
  // Error messages (scp, the stop call) can quote what the instance printed.
  const state: IncidentState = redactJson({
    instance_id: id,
    ...(runId ? {run_id: runId} : {}),
    opened_at: prior?.opened_at ?? now(),
    updated_at: now(),
    invocations: (prior?.invocations ?? 0) + 1,
    status_before: prior ? prior.status_before : (instance?.status ?? null),
    log,
    checkpoints,
    stop,
  }, env)
  const result: IncidentResult = {folder, reused: existing !== undefined, instanceId: id, ...(runId ? {runId} : {}), state, classification, files}
  await writeJsonAtomic(files.classification, redactJson(classification, env), 0o600)
  await writeJsonAtomic(files.state, redactJson(state, env), 0o600)
  await writeSecret(files.report, renderIncidentReport(result))
  if (stop.status === 'failed') {
    throw new UserError(`Instance ${id} was NOT stopped: ${stop.error}. The incident report is in ${folder}.`, {
      code: 'INCIDENT_STOP_FAILED',
      hint: `Stop it by hand: ups instances stop ${id}; then rerun ups incident ${id}.`,
      exitCode: ExitCode.EXTERNAL,
      details: {folder},
    })
  }
  return result
}

/** training.batch_size from the run's resolved config, when the run is here. */
async function batchSizeOf(runsRoot: string, runId: string | undefined): Promise<number | undefined> {
  if (!runId) return undefined
  try {
    const config = parseYaml(await readFile(join(runsRoot, runId, 'config.resolved.yaml'), 'utf8')) as {training?: {batch_size?: unknown}}
    return typeof config?.training?.batch_size === 'number' ? config.training.batch_size : undefined
  } catch {
    return undefined
  }
}
