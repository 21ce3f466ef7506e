/** What the local run directory says about a run's end: shared by cost and cleanup. */
import {stat} from 'node:fs/promises'
import {join} from 'node:path'

import {readHistory, readMetadata, runDirAt, type RunDir, type RunMetadata} from '../tracking/index.js'

export interface RunTimes {
  dir: RunDir
  metadata: RunMetadata
  status: string
  /** finished_at / ended_at / completed_at / failed_at. */
  endedAt?: string
  /** The latest time anything shows the run alive: heartbeat, last history record, file mtimes. */
  lastActivityMs: number
}

const END_KEYS = ['finished_at', 'ended_at', 'completed_at', 'failed_at', 'stopped_at']
const ACTIVITY_KEYS = ['heartbeat_at', 'heartbeat', 'updated_at', 'started_at', 'created_at']

/** Reads a run directory's status and times; undefined when there is no such run here. */
export async function readRunTimes(path: string, options: {history?: boolean} = {}): Promise<RunTimes | undefined> {
  const dir = runDirAt(path)
  let metadata: RunMetadata
  try {
    metadata = await readMetadata(dir)
  } catch {
    return undefined
  }
  const str = (k: string) => (typeof metadata[k] === 'string' && Number.isFinite(Date.parse(metadata[k] as string)) ? (metadata[k] as string) : undefined)
  const endedAt = END_KEYS.map(str).find(Boolean)
  const times = [...END_KEYS, ...ACTIVITY_KEYS].map(str).filter((t): t is string => t !== undefined).map((t) => Date.parse(t))
  for (const f of [dir.paths.metadata, dir.paths.history, dir.paths.summary, join(dir.path, 'logs')]) {
    try {
      times.push((await stat(f)).mtimeMs)
    } catch {
      // absent: fine
    }
  }
  if (options.history !== false) {
    try {
      const last = (await readHistory(dir)).records.at(-1)
      if (last && Number.isFinite(Date.parse(last.time))) times.push(Date.parse(last.time))
    } catch {
      // unreadable history: the other times stand
    }
  }
  return {dir, metadata, status: typeof metadata.status === 'string' ? metadata.status : 'unknown', endedAt, lastActivityMs: times.length ? Math.max(...times) : 0}
}

export const RUN_SUCCESS = new Set(['finished', 'succeeded', 'success', 'completed', 'done'])
export const RUN_FAILURE = new Set(['failed', 'error', 'crashed', 'killed', 'stopped', 'aborted', 'oom'])
export const RUN_ACTIVE = new Set(['running', 'created', 'starting', 'resuming'])
