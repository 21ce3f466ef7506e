/**
 * The local run directory: the source of truth for every run, with or without the network.
 *
 * artifacts/runs/<run_id>/
 *   config.resolved.yaml  metadata.json  history.jsonl  summary.json
 *   logs/  checkpoints/  eval/  reports/
 *
 * JSON and YAML files are written atomically; history.jsonl is appended one line per write,
 * so a crash can leave at most one torn last line, which readers skip and report.
 */
import {constants} from 'node:fs'
import {mkdir, open, readdir, readFile, stat, truncate, type FileHandle} from 'node:fs/promises'
import {basename, dirname, join, resolve} from 'node:path'
import {stringify as stringifyYaml} from 'yaml'

import {ExitCode, UserError, fsError} from '../util/errors.js'
import {writeFileAtomic, writeJsonAtomic} from '../util/fs.js'
import {redactConfigSecrets} from '../util/secrets.js'

export const DEFAULT_RUNS_ROOT = join('artifacts', 'runs')
export const RUN_ID_PATTERN = /^run_\d{8}_\d{6}_[0-9a-f]{4}$/
export const RUN_SUBDIRS = ['logs', 'checkpoints', 'eval', 'reports'] as const

export interface RunDirPaths {
  config: string
  metadata: string
  history: string
  summary: string
  logs: string
  checkpoints: string
  eval: string
  reports: string
}

export interface RunDir {
  id: string
  /** Absolute path of the run directory. */
  path: string
  paths: RunDirPaths
}

/** What metadata.json holds; other modules add their own keys. */
export interface RunMetadata {
  run_id: string
  created_at: string
  status?: 'created' | 'running' | 'finished' | 'failed' | 'stopped' | string
  [key: string]: unknown
}

export interface HistoryRecord {
  step: number
  /** Wall time, ISO 8601. */
  time: string
  metrics: Record<string, number | string | boolean | null>
}

export interface TornLine {
  /** 1-based line number in the file. */
  line: number
  text: string
  reason: string
}

export interface JsonlRead<T> {
  records: T[]
  tornLines: TornLine[]
}

/** `run_YYYYmmdd_HHMMSS_<4 hex>` in UTC; clock and randomness come from the caller. */
export function newRunId(now: Date, randomHex: () => string): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0')
  const date = `${now.getUTCFullYear()}${p(now.getUTCMonth() + 1)}${p(now.getUTCDate())}`
  const time = `${p(now.getUTCHours())}${p(now.getUTCMinutes())}${p(now.getUTCSeconds())}`
  const hex = randomHex().toLowerCase().replace(/[^0-9a-f]/g, '').padEnd(4, '0').slice(0, 4)
  return `run_${date}_${time}_${hex}`
}

/** The UTC time encoded in a run id (the default creation time, so no clock is read here). */
export function runIdTime(runId: string): Date {
  const m = /^run_(\d{4})(\d{2})(\d{2})_(\d{2})(\d{2})(\d{2})_/.exec(runId)
  if (!m) return new Date(Number.NaN)
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number)
  return new Date(Date.UTC(y, mo - 1, d, h, mi, s))
}

export function runDirAt(path: string): RunDir {
  const abs = resolve(path)
  return {
    id: basename(abs),
    path: abs,
    paths: {
      config: join(abs, 'config.resolved.yaml'),
      metadata: join(abs, 'metadata.json'),
      history: join(abs, 'history.jsonl'),
      summary: join(abs, 'summary.json'),
      logs: join(abs, 'logs'),
      checkpoints: join(abs, 'checkpoints'),
      eval: join(abs, 'eval'),
      reports: join(abs, 'reports'),
    },
  }
}

export interface CreateRunDirOptions {
  /** Resolved config: an object (written as YAML) or YAML text. */
  config?: unknown
  /** Extra metadata keys. */
  metadata?: Record<string, unknown>
  now?: Date
}

/** Lays out a new run directory; refuses to reuse an existing one. */
export async function createRunDir(root: string, runId: string, options: CreateRunDirOptions = {}): Promise<RunDir> {
  if (!RUN_ID_PATTERN.test(runId)) {
    throw new UserError(`Run id "${runId}" is not of the form run_YYYYmmdd_HHMMSS_<4 hex>.`, {
      code: 'RUNDIR_BAD_ID',
      exitCode: ExitCode.USAGE,
    })
  }
  const dir = runDirAt(join(root, runId))
  try {
    await mkdir(resolve(root), {recursive: true})
    await mkdir(dir.path)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new UserError(`The run directory ${dir.path} already exists.`, {
        code: 'RUNDIR_EXISTS',
        hint: 'Use a new run id, or resume the existing run.',
        exitCode: ExitCode.USAGE,
      })
    }
    throw fsError(error, dir.path, 'run directory')
  }
  for (const sub of RUN_SUBDIRS) await mkdir(dir.paths[sub], {recursive: true})
  if (options.config !== undefined) await writeResolvedConfig(dir, options.config)
  const metadata: RunMetadata = {
    run_id: runId,
    created_at: (options.now ?? runIdTime(runId)).toISOString(),
    status: 'created',
    ...options.metadata,
  }
  await writeJsonAtomic(dir.paths.metadata, metadata)
  await writeJsonAtomic(dir.paths.summary, {})
  // An empty history file tells readers the run exists but has logged nothing yet.
  await writeFileAtomic(dir.paths.history, '')
  return dir
}

/**
 * Opens a run by path, id or unique id prefix (under `root`). A user-facing lookup: a missing
 * or ambiguous run is a UserError naming the candidates.
 */
export async function openRunDir(pathOrId: string, root: string = DEFAULT_RUNS_ROOT): Promise<RunDir> {
  if (await isRunDir(pathOrId)) return runDirAt(pathOrId)
  const matches = await findRuns(root, pathOrId)
  if (matches.length === 1) return matches[0]
  if (matches.length === 0) {
    throw new UserError(`No run "${pathOrId}" here: it is neither a run directory nor a run id under ${root}.`, {
      code: 'RUNDIR_NOT_FOUND',
      hint: `List the runs with \`ls ${root}\`, or pass --runs-root.`,
      exitCode: ExitCode.USAGE,
    })
  }
  throw new UserError(`"${pathOrId}" matches ${matches.length} runs: ${matches.map((m) => m.id).join(', ')}.`, {
    code: 'RUNDIR_AMBIGUOUS',
    hint: 'Give more characters of the run id.',
    exitCode: ExitCode.USAGE,
  })
}

async function isRunDir(path: string): Promise<boolean> {
  try {
    return (await stat(join(path, 'metadata.json'))).isFile()
  } catch {
    return false
  }
}

/** Every run directory under root (those with a metadata.json), oldest id first. */
export async function listRuns(root: string = DEFAULT_RUNS_ROOT): Promise<RunDir[]> {
  let names: string[]
  try {
    names = await readdir(root)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw fsError(error, root, 'runs folder')
  }
  const runs: RunDir[] = []
  for (const name of names.sort()) {
    if (await isRunDir(join(root, name))) runs.push(runDirAt(join(root, name)))
  }
  return runs
}

/** Runs whose id equals or starts with `prefix`; an exact match wins over prefixes. */
export async function findRuns(root: string, prefix: string): Promise<RunDir[]> {
  const runs = await listRuns(root)
  const exact = runs.filter((r) => r.id === prefix)
  if (exact.length > 0) return exact
  return prefix ? runs.filter((r) => r.id.startsWith(prefix)) : []
}

// ---------------------------------------------------------------- config, metadata, summary

/**
 * config.resolved.yaml. A secret that came from the environment (`${env:WANDB_API_KEY}`) is
 * written back as that reference: the file never holds the key, and reloading it (resume)
 * resolves it again from the environment.
 */
export async function writeResolvedConfig(dir: RunDir, config: unknown, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const safe = redactConfigSecrets(config, env)
  const text = typeof safe === 'string' ? safe : stringifyYaml(safe)
  await writeFileAtomic(dir.paths.config, text.endsWith('\n') ? text : text + '\n')
}

export async function readResolvedConfigText(dir: RunDir): Promise<string | undefined> {
  return readOptional(dir.paths.config)
}

export async function readMetadata(dir: RunDir): Promise<RunMetadata> {
  return readJsonFile<RunMetadata>(dir.paths.metadata, 'run metadata')
}

/** Shallow-merges `patch` into metadata.json and writes it atomically; returns the result. */
export async function updateMetadata(dir: RunDir, patch: Record<string, unknown>): Promise<RunMetadata> {
  const current = await readMetadata(dir)
  const next = {...current, ...patch} as RunMetadata
  await writeJsonAtomic(dir.paths.metadata, next)
  return next
}

export async function readSummary(dir: RunDir): Promise<Record<string, unknown>> {
  const text = await readOptional(dir.paths.summary)
  return text === undefined ? {} : parseJson<Record<string, unknown>>(text, dir.paths.summary)
}

/** Merges values into summary.json (last value per key wins, as in W&B). */
export async function updateSummary(dir: RunDir, values: Record<string, unknown>): Promise<Record<string, unknown>> {
  const next = {...(await readSummary(dir)), ...values}
  await writeJsonAtomic(dir.paths.summary, next)
  return next
}

// ---------------------------------------------------------------- history (JSON lines)

/**
 * Appends JSON lines one write per record (O_APPEND), fsyncing every `syncEvery` lines and on
 * sync()/close(). A torn tail left by an earlier crash is cut off before the first append, so
 * it cannot glue itself to the next record.
 */
export class JsonlAppender {
  private handle?: FileHandle
  private unsynced = 0
  private queue: Promise<unknown> = Promise.resolve()
  /** Lines dropped from the tail when the file was opened (torn by a crash). */
  repairedTail?: string

  constructor(
    readonly path: string,
    private readonly syncEvery = 50,
  ) {}

  append(record: unknown): Promise<void> {
    const line = JSON.stringify(record) + '\n'
    // Serialise writes: concurrent callers must not interleave partial lines.
    const next = this.queue.then(async () => {
      const handle = await this.open()
      await handle.write(line)
      if (++this.unsynced >= this.syncEvery) await this.syncNow()
    })
    this.queue = next.catch(() => undefined)
    return next
  }

  async sync(): Promise<void> {
    await this.queue
    await this.syncNow()
  }

  async close(): Promise<void> {
    await this.sync()
    await this.handle?.close()
    this.handle = undefined
  }

  private async syncNow(): Promise<void> {
    if (this.handle && this.unsynced > 0) await this.handle.sync()
    this.unsynced = 0
  }

  private async open(): Promise<FileHandle> {
    if (this.handle) return this.handle
    this.repairedTail = await cutTornTail(this.path)
    // A run directory whose logs/ was removed (cleaned by hand) gets it back instead of failing the run.
    await mkdir(dirname(this.path), {recursive: true})
    this.handle = await open(this.path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o644)
    return this.handle
  }
}

/** Truncates a file after its last newline; returns what was cut (undefined when nothing). */
async function cutTornTail(path: string): Promise<string | undefined> {
  let text: Buffer
  try {
    text = await readFile(path)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
  if (text.length === 0 || text[text.length - 1] === 0x0a) return undefined
  const keep = text.lastIndexOf(0x0a) + 1
  await truncate(path, keep)
  return text.subarray(keep).toString('utf8')
}

/**
 * Reads JSON lines. A last line that is unterminated or unparsable is a torn write: it is
 * skipped and reported. A bad line in the middle is also skipped and reported (never fatal),
 * since analyze and resume must still work on a damaged run.
 */
export async function readJsonl<T>(path: string, validate?: (value: unknown) => value is T): Promise<JsonlRead<T>> {
  const text = (await readOptional(path)) ?? ''
  const records: T[] = []
  const tornLines: TornLine[] = []
  const lines = text.split('\n')
  const terminated = text.endsWith('\n')
  if (terminated || text === '') lines.pop()
  lines.forEach((raw, index) => {
    if (raw.trim() === '') return
    const isLast = index === lines.length - 1
    if (isLast && !terminated) {
      tornLines.push({line: index + 1, text: raw, reason: 'unterminated last line (interrupted write)'})
      return
    }
    let value: unknown
    try {
      value = JSON.parse(raw)
    } catch {
      tornLines.push({line: index + 1, text: raw, reason: 'not valid JSON'})
      return
    }
    if (validate && !validate(value)) {
      tornLines.push({line: index + 1, text: raw, reason: 'not a valid record'})
      return
    }
    records.push(value as T)
  })
  return {records, tornLines}
}

export function isHistoryRecord(value: unknown): value is HistoryRecord {
  const v = value as HistoryRecord
  return (
    typeof v === 'object' && v !== null && Number.isInteger(v.step) && typeof v.metrics === 'object' && v.metrics !== null
  )
}

export function readHistory(dir: RunDir): Promise<JsonlRead<HistoryRecord>> {
  return readJsonl(dir.paths.history, isHistoryRecord)
}

/** A history writer for a training loop: keep one open per run. */
export function historyWriter(dir: RunDir, syncEvery = 50): HistoryWriter {
  const appender = new JsonlAppender(dir.paths.history, syncEvery)
  return {
    log: (step, metrics, time) => appender.append({step, time: time.toISOString(), metrics} satisfies HistoryRecord),
    sync: () => appender.sync(),
    close: () => appender.close(),
  }
}

export interface HistoryWriter {
  log(step: number, metrics: HistoryRecord['metrics'], time: Date): Promise<void>
  sync(): Promise<void>
  close(): Promise<void>
}

// ---------------------------------------------------------------- helpers

export async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw fsError(error, path)
  }
}

export async function readJsonFile<T>(path: string, what = 'file'): Promise<T> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    throw fsError(error, path, what)
  }
  return parseJson<T>(text, path)
}

function parseJson<T>(text: string, path: string): T {
  try {
    return JSON.parse(text) as T
  } catch (error) {
    throw new UserError(`${path} is not valid JSON: ${(error as Error).message}.`, {
      code: 'RUNDIR_BAD_JSON',
      hint: 'The file was edited or damaged; restore it from a backup or remove the run.',
      exitCode: ExitCode.USAGE,
    })
  }
}
