/**
 * Preserving evidence before an instance is stopped or destroyed (INC-001 step 2, PROC-002
 * step 1): its log into `incidents/<ts>_<id>/instance.log`, and, where the provider can copy
 * files, the run's checkpoints. Every step reports what it could not save instead of failing
 * the whole operation: the caller is usually about to stop a runaway instance.
 */
import {join, resolve} from 'node:path'

import {writeFileAtomic, writeJsonAtomic} from '../util/fs.js'
import {redactSecrets} from '../util/secrets.js'
import type {Provider} from '../vast/index.js'

export const INCIDENTS_DIR = 'incidents'
/** Where the onstart script puts the project on the instance (see src/vast/onstart.ts). */
export const REMOTE_APP_DIR = '/workspace/ups'

/** `20251128_103000` (UTC) from a date. */
export function stamp(date: Date): string {
  return date.toISOString().replace(/\.\d+Z$/, '').replace(/[-:]/g, '').replace('T', '_')
}

export function incidentDir(root: string, now: Date, instanceId: number): string {
  return resolve(root, INCIDENTS_DIR, `${stamp(now)}_${instanceId}`)
}

export interface SavedLogs {
  dir: string
  /** The log file, or null when the log could not be read. */
  logPath: string | null
  lines: number
  error?: string
}

/** Saves the whole log the provider returns; secrets in `env` are redacted from it. */
export async function saveInstanceLogs(
  provider: Provider,
  id: number,
  options: {dir: string; env?: NodeJS.ProcessEnv},
): Promise<SavedLogs> {
  try {
    const lines = await provider.logs(id)
    const logPath = join(options.dir, 'instance.log')
    await writeFileAtomic(logPath, redactSecrets(lines.join('\n') + (lines.length ? '\n' : ''), options.env ?? {}))
    return {dir: options.dir, logPath, lines: lines.length}
  } catch (error) {
    return {dir: options.dir, logPath: null, lines: 0, error: (error as Error).message}
  }
}

export interface SavedCheckpoints {
  remotePath: string
  localPath: string | null
  error?: string
}

/** Tries to copy the run's checkpoints off the instance; says why when it cannot. */
export async function saveCheckpoints(provider: Provider, id: number, runId: string, dir: string): Promise<SavedCheckpoints> {
  const remotePath = `${REMOTE_APP_DIR}/artifacts/runs/${runId}/checkpoints`
  if (!provider.copyFrom) return {remotePath, localPath: null, error: `the ${provider.name} provider cannot copy files`}
  const localPath = join(dir, 'checkpoints')
  try {
    // Trailing slash: rsync copies the folder's contents into localPath.
    await provider.copyFrom(id, `${remotePath}/`, localPath)
    return {remotePath, localPath}
  } catch (error) {
    return {remotePath, localPath: null, error: (error as Error).message}
  }
}

/** A small JSON note next to the saved logs: what happened and why. */
export async function writeIncidentNote(dir: string, note: Record<string, unknown>): Promise<string> {
  const path = join(dir, 'incident.json')
  await writeJsonAtomic(path, note)
  return path
}
