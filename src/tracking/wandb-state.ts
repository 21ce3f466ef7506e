/**
 * What the W&B mirror keeps in the run directory so that an upload can always be finished
 * later (`ups sync`) without sending anything twice:
 *
 *   wandb/state.json    run identity, how many history lines W&B acknowledged, the summary and
 *                       files already sent, whether completion was acknowledged
 *   wandb/queue.jsonl   every history row in W&B form, appended as logged
 *   wandb_run.json      id, name, project, entity, url (for people and for analyze)
 *
 * None of these ever holds the API key.
 */
import {join} from 'node:path'

import {writeJsonAtomic} from '../util/fs.js'
import {readJsonl, readOptional, type JsonlRead, type RunDir} from './rundir.js'

export interface WandbSettings {
  enabled: boolean
  project?: string
  entity?: string
  run_name?: string
  group?: string
  job_type?: string
  tags?: string[]
  notes?: string
}

export interface WandbRunInfo {
  id: string
  name: string
  project: string
  entity: string
  url: string
}

export interface WandbState {
  version: 1
  /** The W&B run id (URL slug); the local run id. */
  id: string
  name: string
  project: string
  entity?: string
  group?: string
  job_type?: string
  tags?: string[]
  notes?: string
  /** 'queue': rows in wandb/queue.jsonl (mirror ran online); 'history': rows from history.jsonl (offline run). */
  source: 'queue' | 'history'
  /** The run exists on the server. */
  created: boolean
  /** History lines W&B has acknowledged (= the next file_stream offset). */
  historyAcked: number
  /** Summary values set explicitly (history's last values are added when sending). */
  summary?: Record<string, unknown>
  /** The full summary last acknowledged, as sent (JSON). */
  summarySent?: string
  /** Files acknowledged, by W&B name, with what identified the version sent. */
  filesSent: Record<string, {size: number; mtimeMs: number}>
  /** Files asked for and not yet acknowledged (W&B names, relative to the run dir). */
  filesPending: string[]
  /** Set when the run ended; exitcode 0 = finished, otherwise failed. */
  finish?: {exitcode: number}
  finishAcked: boolean
  /** The last upload error (redacted), cleared on success. */
  lastError?: string
  failures: number
}

export function wandbPaths(dir: RunDir) {
  return {
    folder: join(dir.path, 'wandb'),
    state: join(dir.path, 'wandb', 'state.json'),
    queue: join(dir.path, 'wandb', 'queue.jsonl'),
    runInfo: join(dir.path, 'wandb_run.json'),
  }
}

export async function readWandbState(dir: RunDir): Promise<WandbState | undefined> {
  const text = await readOptional(wandbPaths(dir).state)
  if (text === undefined) return undefined
  try {
    return JSON.parse(text) as WandbState
  } catch {
    // A damaged state file is rebuilt; the server's history line count keeps resends exact.
    return undefined
  }
}

export async function writeWandbState(dir: RunDir, state: WandbState): Promise<void> {
  await writeJsonAtomic(wandbPaths(dir).state, state)
}

export async function readWandbRunInfo(dir: RunDir): Promise<WandbRunInfo | undefined> {
  const text = await readOptional(wandbPaths(dir).runInfo)
  return text === undefined ? undefined : (JSON.parse(text) as WandbRunInfo)
}

export function readQueue(dir: RunDir): Promise<JsonlRead<Record<string, unknown>>> {
  return readJsonl(wandbPaths(dir).queue, (v): v is Record<string, unknown> => typeof v === 'object' && v !== null)
}

export function newWandbState(dir: RunDir, settings: WandbSettings, source: WandbState['source']): WandbState {
  return {
    version: 1,
    id: dir.id,
    name: settings.run_name || dir.id,
    project: settings.project ?? '',
    entity: settings.entity || undefined,
    group: settings.group || undefined,
    job_type: settings.job_type || undefined,
    tags: settings.tags && settings.tags.length > 0 ? settings.tags : undefined,
    notes: settings.notes || undefined,
    source,
    created: false,
    historyAcked: 0,
    filesSent: {},
    filesPending: [],
    finishAcked: false,
    failures: 0,
  }
}

/** Why the mirror is off, or undefined when it may use the network. */
export function wandbInactiveReason(settings: WandbSettings | undefined, env: Record<string, string | undefined>): string | undefined {
  if (!settings?.enabled) return 'logging.wandb.enabled is false'
  const mode = (env.WANDB_MODE ?? '').toLowerCase()
  if (mode === 'offline' || mode === 'disabled' || mode === 'dryrun') return `WANDB_MODE=${mode}`
  if (!env.WANDB_API_KEY) return 'WANDB_API_KEY is not set'
  if (!settings.project) return 'logging.wandb.project is not set'
  return undefined
}

/** Reads the logging.wandb block out of a resolved config object (keys as in the config). */
export function wandbSettingsFromConfig(config: unknown): WandbSettings | undefined {
  const block = (config as {logging?: {wandb?: Record<string, unknown>}})?.logging?.wandb
  if (!block || typeof block !== 'object') return undefined
  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined)
  return {
    enabled: block.enabled === true,
    project: str(block.project),
    entity: str(block.entity),
    run_name: str(block.run_name),
    group: str(block.group),
    job_type: str(block.job_type),
    tags: Array.isArray(block.tags) ? block.tags.map(String) : undefined,
    notes: str(block.notes),
  }
}
