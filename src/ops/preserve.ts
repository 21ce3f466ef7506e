/**
 * Preserving evidence before an instance is stopped or destroyed (INC-001 step 2, PROC-002
 * step 1): its log into `incidents/<ts>_<id>/instance.log`, and, where the provider can copy
 * files, the run's checkpoints. Every step reports what it could not save instead of failing
 * the whole operation: the caller is usually about to stop a runaway instance.
 */
import {copyFile, link, mkdir, readdir, stat} from 'node:fs/promises'
import {dirname, join, posix, relative, resolve} from 'node:path'

import {writeFileAtomic, writeJsonAtomic} from '../util/fs.js'
import {redactJson, redactSecrets} from '../util/secrets.js'
import {ONSTART_WORKDIR, type Provider, RESTORE_MARKER} from '../vast/index.js'

export const INCIDENTS_DIR = 'incidents'
/** Where the onstart script puts the project on the instance (see src/vast/onstart.ts). */
export const REMOTE_APP_DIR = ONSTART_WORKDIR

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

/** Saves the whole log the provider returns, redacted (secrets in `env`, key shapes), owner-only. */
export async function saveInstanceLogs(
  provider: Provider,
  id: number,
  options: {dir: string; env?: NodeJS.ProcessEnv},
): Promise<SavedLogs> {
  try {
    const lines = await provider.logs(id)
    const logPath = join(options.dir, 'instance.log')
    await mkdir(options.dir, {recursive: true, mode: 0o700})
    await writeFileAtomic(logPath, redactSecrets(lines.join('\n') + (lines.length ? '\n' : ''), options.env ?? process.env), 0o600)
    return {dir: options.dir, logPath, lines: lines.length}
  } catch (error) {
    return {dir: options.dir, logPath: null, lines: 0, error: (error as Error).message}
  }
}

export interface SavedCheckpoints {
  remotePath: string
  localPath: string | null
  /** The run's own files saved beside them (in `<dir>/run-files`): what `ups resume RUN` opens. */
  runFiles: string[]
  error?: string
}

/** Run-directory files `ups resume RUN` needs besides the checkpoints. */
export const RUN_FILES = ['metadata.json', 'config.resolved.yaml', 'summary.json', 'history.jsonl']

/** Tries to copy the run's checkpoints off the instance; says why when it cannot. */
export async function saveCheckpoints(provider: Provider, id: number, runId: string, dir: string): Promise<SavedCheckpoints> {
  const runDir = `${REMOTE_APP_DIR}/artifacts/runs/${runId}`
  const remotePath = `${runDir}/checkpoints`
  if (!provider.copyFrom) return {remotePath, localPath: null, runFiles: [], error: `the ${provider.name} provider cannot copy files`}
  const localPath = join(dir, 'checkpoints')
  try {
    // Trailing slash: rsync copies the folder's contents into localPath.
    await provider.copyFrom(id, `${remotePath}/`, localPath)
  } catch (error) {
    return {remotePath, localPath: null, runFiles: [], error: (error as Error).message}
  }
  const runFiles: string[] = []
  for (const name of RUN_FILES) {
    // Best effort, one file at a time: a run that never logged has no history.jsonl, say.
    await provider.copyFrom(id, `${runDir}/${name}`, join(dir, 'run-files')).then(() => runFiles.push(name), () => undefined)
  }
  return {remotePath, localPath, runFiles}
}

/** A small JSON note next to the saved logs: what happened and why. */
export async function writeIncidentNote(dir: string, note: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const path = join(dir, 'incident.json')
  // Error messages in the note may quote the log.
  await writeJsonAtomic(path, redactJson(note, env), 0o600)
  return path
}

export interface RestoredCheckpoints {
  /** Where the checkpoints went on the instance. */
  remotePath: string
  /** The marker the onstart waits for; copied last, only after the checkpoints arrived. */
  markerPath: string
  restored: boolean
  files: number
  bytes: number
  /** Why nothing (or not everything) was restored. */
  error?: string
}

/** Every file under a folder (relative paths), with the byte total. */
export async function listFiles(dir: string): Promise<{files: string[]; bytes: number}> {
  const files: string[] = []
  let bytes = 0
  for (const e of await readdir(dir, {withFileTypes: true, recursive: true})) {
    if (!e.isFile()) continue
    const path = join(e.parentPath, e.name)
    files.push(relative(dir, path))
    bytes += (await stat(path)).size
  }
  return {files: files.sort(), bytes}
}

/**
 * Puts saved checkpoints back on a (running) replacement instance, at
 * `<workdir>/artifacts/runs/<run>/checkpoints`, then the `.restore-complete` marker next to them.
 * rsync creates only the last folder of a destination, and on a fresh instance the run folder
 * does not exist yet: so the files are staged locally (hard links) as a tree that mirrors the
 * workdir's parent folder, and that tree is sent into the parent, which exists.
 */
export async function restoreCheckpoints(
  provider: Provider,
  id: number,
  options: {localDir: string; runId: string; stageDir: string; workdir?: string; runFilesDir?: string},
): Promise<RestoredCheckpoints> {
  const workdir = options.workdir ?? REMOTE_APP_DIR
  const runDir = posix.join(workdir, 'artifacts', 'runs', options.runId)
  const remotePath = `${runDir}/checkpoints`
  const markerPath = `${runDir}/${RESTORE_MARKER}`
  const none = (error: string, files = 0, bytes = 0): RestoredCheckpoints => ({remotePath, markerPath, restored: false, files, bytes, error})
  if (!provider.copyTo) return none(`the ${provider.name} provider cannot copy files onto an instance`)
  const {files, bytes} = await listFiles(options.localDir).catch(() => ({files: [] as string[], bytes: 0}))
  if (files.length === 0) return none(`no checkpoint files were saved in ${options.localDir}`)
  const parent = posix.dirname(workdir)
  const inside = posix.relative(parent, runDir)
  const ckptStage = join(options.stageDir, 'checkpoints')
  const markerStage = join(options.stageDir, 'marker')
  for (const f of files) {
    const to = join(ckptStage, inside, 'checkpoints', f)
    await mkdir(dirname(to), {recursive: true})
    await link(join(options.localDir, f), to).catch(() => copyFile(join(options.localDir, f), to))
  }
  // The run's own files (metadata.json ...) travel with the checkpoints, at the run folder's root.
  const runFiles = options.runFilesDir ? (await listFiles(options.runFilesDir).catch(() => ({files: [] as string[]}))).files : []
  for (const f of runFiles) {
    const to = join(ckptStage, inside, f)
    await mkdir(dirname(to), {recursive: true})
    await link(join(options.runFilesDir!, f), to).catch(() => copyFile(join(options.runFilesDir!, f), to))
  }
  await writeJsonAtomic(join(markerStage, inside, RESTORE_MARKER), {run_id: options.runId, files: files.length, bytes})
  try {
    await provider.copyTo(id, `${ckptStage}/`, `${parent}/`)
  } catch (error) {
    return none(`copy failed: ${(error as Error).message}`, files.length, bytes)
  }
  try {
    await provider.copyTo(id, `${markerStage}/`, `${parent}/`)
  } catch (error) {
    return none(`the checkpoints were copied but the marker was not (${(error as Error).message}); the instance waits for it, then resumes without them`, files.length, bytes)
  }
  return {remotePath, markerPath, restored: true, files: files.length, bytes}
}
