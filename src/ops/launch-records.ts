/**
 * A tolerant reader of the launch records `ups launch` appends (one JSON object per line in
 * `$UPS_HOME/launches.jsonl`, default `~/.ups/launches.jsonl`). Operations code must keep
 * working on a damaged or older file, so bad lines are skipped and reported, never fatal, and
 * every field but instance_id is optional.
 */
import {readFile} from 'node:fs/promises'

import {fsError} from '../util/errors.js'

export interface LaunchRecord {
  instance_id: number
  run_id?: string
  config?: string
  config_hash?: string
  offer_id?: number
  gpu?: string
  /** USD per hour. */
  dph?: number
  estimate?: {hours?: number; usd?: number}
  /** ISO 8601. */
  started_at?: string
  label?: string
  source?: string
  /** Set by later updates when known (not written by every version of launch). */
  ended_at?: string
  status?: string
  /** 1-based line in the file (the last line wins when an instance appears twice). */
  line: number
}

export interface SkippedLine {
  line: number
  reason: string
}

export interface LaunchRecordsRead {
  path: string
  /** False when the file does not exist (no launches recorded yet): not an error. */
  exists: boolean
  records: LaunchRecord[]
  skipped: SkippedLine[]
}

/** Where launch records live: `$UPS_HOME/launches.jsonl`, else `<home>/.ups/launches.jsonl`. */
export {launchesPath as launchRecordsPath} from '../vast/records.js'

/** Reads every launch record; later lines for the same instance are merged over earlier ones. */
export async function readLaunchRecords(path: string): Promise<LaunchRecordsRead> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {path, exists: false, records: [], skipped: []}
    throw fsError(error, path, 'launch records file')
  }
  const byInstance = new Map<number, LaunchRecord>()
  const skipped: SkippedLine[] = []
  const lines = text.split('\n')
  lines.forEach((raw, index) => {
    if (raw.trim() === '') return
    const line = index + 1
    let value: unknown
    try {
      value = JSON.parse(raw)
    } catch {
      const torn = index === lines.length - 1 && !text.endsWith('\n')
      skipped.push({line, reason: torn ? 'unterminated last line (interrupted write)' : 'not valid JSON'})
      return
    }
    const record = toRecord(value, line)
    if (typeof record === 'string') {
      skipped.push({line, reason: record})
      return
    }
    const previous = byInstance.get(record.instance_id)
    byInstance.set(record.instance_id, previous ? mergeRecord(previous, record) : record)
  })
  return {path, exists: true, records: [...byInstance.values()], skipped}
}

/** The record for an instance, if any. */
export function findLaunchRecord(records: LaunchRecord[], instanceId: number): LaunchRecord | undefined {
  return records.find((r) => r.instance_id === instanceId)
}

/** The newest record (by started_at, then line) for a run id. */
export function findLaunchForRun(records: LaunchRecord[], runId: string): LaunchRecord | undefined {
  const matches = records.filter((r) => r.run_id === runId)
  return matches.sort((a, b) => (Date.parse(b.started_at ?? '') || 0) - (Date.parse(a.started_at ?? '') || 0) || b.line - a.line)[0]
}

/** Update statuses after which an instance no longer bills for its GPU. */
const ENDED_STATUSES = new Set(['stopped', 'stopped_by_watchdog', 'destroyed', 'rolled_back', 'recovered', 'finished', 'failed'])

function toRecord(value: unknown, line: number): LaunchRecord | string {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return 'not a JSON object'
  const v = value as Record<string, unknown>
  const id = typeof v.instance_id === 'string' && /^\d+$/.test(v.instance_id) ? Number(v.instance_id) : v.instance_id
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id <= 0) return 'no valid instance_id'
  const str = (k: string) => (typeof v[k] === 'string' && v[k] !== '' ? (v[k] as string) : undefined)
  const num = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? x : typeof x === 'string' && x.trim() !== '' && Number.isFinite(Number(x)) ? Number(x) : undefined)
  const date = (k: string) => {
    const s = str(k)
    return s !== undefined && Number.isFinite(Date.parse(s)) ? s : undefined
  }
  const est = v.estimate && typeof v.estimate === 'object' ? (v.estimate as Record<string, unknown>) : undefined
  // `ups launch` writes offer/source as objects and status updates as {kind: 'update', at, status}.
  const offer = v.offer && typeof v.offer === 'object' ? (v.offer as Record<string, unknown>) : {}
  const src = v.source && typeof v.source === 'object' ? (v.source as Record<string, unknown>) : undefined
  const ended = v.kind === 'update' && typeof v.status === 'string' && ENDED_STATUSES.has(v.status) ? date('at') : undefined
  const estimate = est ? stripUndefined({hours: num(est.hours), usd: num(est.usd)}) : undefined
  return stripUndefined({
    instance_id: id,
    run_id: str('run_id'),
    config: str('config') ?? str('config_path'),
    config_hash: str('config_hash'),
    offer_id: num(v.offer_id) ?? num(offer.id),
    gpu: str('gpu') ?? (typeof offer.gpu_name === 'string' ? offer.gpu_name : undefined),
    dph: num(v.dph) ?? num(v.dph_total),
    estimate: estimate && Object.keys(estimate).length > 0 ? estimate : undefined,
    started_at: date('started_at'),
    label: str('label'),
    source: str('source') ?? (src ? `${src.git_url}#${src.ref}` : undefined),
    ended_at: date('ended_at') ?? date('stopped_at') ?? ended,
    status: str('status') ?? str('outcome'),
    line,
  }) as LaunchRecord
}

/**
 * A later line wins, except: the instance's GPU stopped billing at its FIRST end (a stop, a
 * rollback), not when it was destroyed days later; and "destroyed" does not hide why it ended.
 */
function mergeRecord(previous: LaunchRecord, next: LaunchRecord): LaunchRecord {
  const merged = {...previous, ...stripUndefined(next)}
  if (previous.ended_at && next.ended_at && Date.parse(previous.ended_at) < Date.parse(next.ended_at)) merged.ended_at = previous.ended_at
  if (previous.status && next.status === 'destroyed') merged.status = previous.status
  return merged
}

function stripUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, x]) => x !== undefined)) as T
}
