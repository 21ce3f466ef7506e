/**
 * Launch records: the runbook's "Document" step, written by `ups launch` and read by
 * `ups monitor`, `ups watchdog`, `ups recover`, `ups cost` and `ups analyze`.
 *
 * One JSON object per line in `$UPS_HOME/launches.jsonl` (default `~/.ups/launches.jsonl`).
 * The file is append-only: a launch is a `launch` line; later facts about it (rolled back,
 * watchdog pid, recovered by ...) are `update` lines merged on read, so no line is ever
 * rewritten. Each line goes out in one write (O_APPEND), so a crash can tear only the last
 * line, which readers skip and report.
 */
import {mkdir, open, readFile} from 'node:fs/promises'
import {dirname, join} from 'node:path'

import {ExitCode, UserError, fsError} from '../util/errors.js'

export const LAUNCHES_FILE = 'launches.jsonl'

export interface LaunchEstimate {
  hours: number
  usd: number
  pricePerHour: number
  /** Who made it: "static estimate", "dry-run estimate", ... */
  source: string
}

export interface LaunchRecord {
  kind: 'launch'
  instance_id: number
  run_id: string
  /** As given on the command line, and absolute (recover and monitor reload it). */
  config_path: string
  config_abs_path: string
  config_hash: string
  offer: {id: number; gpu_name: string; num_gpus: number; dph_total: number; location: string | null}
  /** $/hour at launch (the offer's dph_total). */
  dph_total: number
  estimate: LaunchEstimate
  /** ISO 8601 (UTC). */
  started_at: string
  label: string | null
  source: {git_url: string; ref: string; dirty: boolean}
  image: string
  disk_gb: number
  auto_shutdown: boolean
  run_args: string[]
  data: string[]
  /** The offer constraints the offer was chosen with (recover reuses them). */
  filters: Record<string, unknown>
  /** Set when this launch replaced another (ups recover). */
  recovered_from?: {instance_id: number; run_id: string}
  /** Whether the instance runs `ups resume RUN` instead of `ups run`. */
  resume?: boolean
  /** What went wrong on the way to this instance (offers taken, a failed create found by its label). */
  create_note?: string
  /** Create failed but the instance existed (found by its label) and was taken on. */
  adopted?: boolean
  /** Merged from update lines. */
  status?: string
  status_reason?: string
  watchdog_pid?: number
  replaced_by?: number
  /** ups recover: what was put back on the replacement (or why not). */
  restore?: {restored: boolean; files: number; bytes: number; remote_path: string; error?: string}
  /** Who destroyed it: launch rollback, `ups instances destroy`, `ups cleanup`. */
  destroyed_by?: string
  updated_at?: string
}

export interface LaunchUpdate {
  kind: 'update'
  instance_id: number
  at: string
  status?: string
  status_reason?: string
  watchdog_pid?: number
  replaced_by?: number
  /** ups recover: what was put back on the replacement (or why not). */
  restore?: {restored: boolean; files: number; bytes: number; remote_path: string; error?: string}
  destroyed_by?: string
}

export interface TornRecordLine {
  line: number
  text: string
  reason: string
}

export interface LaunchRecords {
  path: string
  /** Launches in file order (oldest first), updates merged in. */
  launches: LaunchRecord[]
  tornLines: TornRecordLine[]
}

/** `$UPS_HOME/launches.jsonl`, else `<home>/.ups/launches.jsonl`. */
export function launchesPath(env: NodeJS.ProcessEnv, home: string): string {
  return join(env.UPS_HOME || join(home, '.ups'), LAUNCHES_FILE)
}

async function appendLine(path: string, value: unknown): Promise<void> {
  await mkdir(dirname(path), {recursive: true})
  const handle = await open(path, 'a+')
  try {
    // A torn last line (crash mid-write) must not swallow the next record: start a new line.
    const {size} = await handle.stat()
    let prefix = ''
    if (size > 0) {
      const last = Buffer.alloc(1)
      await handle.read(last, 0, 1, size - 1)
      if (last[0] !== 0x0a) prefix = '\n'
    }
    await handle.write(prefix + JSON.stringify(value) + '\n')
    await handle.sync()
  } catch (error) {
    throw fsError(error, path, 'launch record file')
  } finally {
    await handle.close()
  }
}

export async function appendLaunchRecord(path: string, record: LaunchRecord): Promise<void> {
  await appendLine(path, record)
}

export async function appendLaunchUpdate(path: string, update: Omit<LaunchUpdate, 'kind'>): Promise<void> {
  await appendLine(path, {kind: 'update', ...update})
}

/** Reads every launch; a missing file is no launches. Torn or foreign lines are skipped and reported. */
export async function readLaunchRecords(path: string): Promise<LaunchRecords> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {path, launches: [], tornLines: []}
    throw fsError(error, path, 'launch record file')
  }
  const launches: LaunchRecord[] = []
  const byId = new Map<number, LaunchRecord>()
  const tornLines: TornRecordLine[] = []
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return
    let value: unknown
    try {
      value = JSON.parse(line)
    } catch {
      tornLines.push({line: i + 1, text: line.slice(0, 200), reason: 'not JSON (torn write?)'})
      return
    }
    const v = (value ?? {}) as {kind?: unknown; instance_id?: unknown; run_id?: unknown}
    if (v.kind === 'launch' && typeof v.instance_id === 'number' && typeof v.run_id === 'string') {
      const rec = value as LaunchRecord
      launches.push(rec)
      byId.set(rec.instance_id, rec)
    } else if (v.kind === 'update' && typeof v.instance_id === 'number') {
      const target = byId.get(v.instance_id)
      if (!target) {
        tornLines.push({line: i + 1, text: line.slice(0, 200), reason: `update for unknown instance ${v.instance_id}`})
        return
      }
      const {kind: _k, instance_id: _i, at, ...patch} = value as LaunchUpdate
      Object.assign(target, patch, {updated_at: at})
    } else {
      tornLines.push({line: i + 1, text: line.slice(0, 200), reason: 'not a launch record'})
    }
  })
  return {path, launches, tornLines}
}

/** The newest launch of an instance (ids are not reused by Vast, but be safe), or by run id. */
export function findLaunch(records: LaunchRecords, by: {instanceId?: number; runId?: string}): LaunchRecord | undefined {
  for (let i = records.launches.length - 1; i >= 0; i--) {
    const r = records.launches[i]
    if (by.instanceId !== undefined && r.instance_id === by.instanceId) return r
    if (by.runId !== undefined && r.run_id === by.runId) return r
  }
  return undefined
}

/** Like findLaunch, but a UserError naming the file when there is none. */
export function requireLaunch(records: LaunchRecords, by: {instanceId?: number; runId?: string}): LaunchRecord {
  const found = by.instanceId === undefined && by.runId === undefined ? records.launches[records.launches.length - 1] : findLaunch(records, by)
  if (found) return found
  const what = by.runId !== undefined ? `run ${by.runId}` : by.instanceId !== undefined ? `instance ${by.instanceId}` : 'any launch'
  throw new UserError(`No launch record for ${what} in ${records.path}.`, {
    code: 'LAUNCH_RECORD_NOT_FOUND',
    hint: records.launches.length ? `Known: ${records.launches.slice(-5).map((r) => `${r.instance_id} (${r.run_id})`).join(', ')}.` : 'Launch with `ups launch --config C` first.',
    exitCode: ExitCode.USAGE,
  })
}

/**
 * Notes a destroy done outside `ups launch` (`ups instances destroy`, `ups cleanup`) on the
 * instance's launch record, so cost and monitor see it ended then. Instances ups did not launch
 * have no record: nothing is written and false returned.
 */
export async function recordDestroyed(path: string, instanceId: number, how: {at: Date; by: string}): Promise<boolean> {
  if (!findLaunch(await readLaunchRecords(path), {instanceId})) return false
  await appendLaunchUpdate(path, {instance_id: instanceId, at: how.at.toISOString(), status: 'destroyed', destroyed_by: how.by})
  return true
}
