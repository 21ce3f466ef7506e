/**
 * One upload pass from the run directory to W&B, shared by the live mirror and `ups sync`.
 * Each step records what W&B acknowledged in wandb/state.json before the next, so a pass
 * that fails anywhere can be repeated without sending anything twice.
 */
import {readFile, stat} from 'node:fs/promises'
import {isAbsolute, join, relative, sep} from 'node:path'

import type {Logger} from '../util/logger.js'
import {redactSecrets} from '../util/secrets.js'
import {writeJsonAtomic} from '../util/fs.js'
import type {RunDir} from './rundir.js'
import {HISTORY_FILE, SUMMARY_FILE, WandbClient, WandbRequestError, runUrl, wrapConfig, type FetchLike} from './wandb-client.js'
import {wandbPaths, writeWandbState, type WandbRunInfo, type WandbState} from './wandb-state.js'

/** Side effects the W&B code needs; tests pass a mock server's fetch and a fake clock. */
export interface WandbDeps {
  env: Record<string, string | undefined>
  fetch: FetchLike
  now: () => Date
  sleep: (ms: number) => Promise<void>
  logger?: Logger
}

export const HISTORY_CHUNK_LINES = 500
export const MAX_ERRORS_PER_PASS = 8

export interface PassStats {
  historySent: number
  summarySent: boolean
  filesSent: string[]
  completed: boolean
}

export function baseUrlOf(env: Record<string, string | undefined>): string {
  return (env.WANDB_BASE_URL || 'https://api.wandb.ai').replace(/\/+$/, '')
}

export function clientFor(deps: WandbDeps): WandbClient {
  return new WandbClient({baseUrl: baseUrlOf(deps.env), apiKey: deps.env.WANDB_API_KEY ?? '', fetch: deps.fetch})
}

/** Backoff before retry n (1-based): 1 s, 2 s, 4 s ... capped at 60 s. */
export function backoffMs(failures: number): number {
  return Math.min(60_000, 1000 * 2 ** Math.max(0, failures - 1))
}

export class Uploader {
  /** True once this process has (re)attached to the server run and reconciled offsets. */
  private connected = false
  private saving: Promise<void> = Promise.resolve()
  private readonly uploadUrls = new Map<string, {url: string; headers: string[]}>()

  constructor(
    readonly dir: RunDir,
    readonly state: WandbState,
    private readonly client: WandbClient,
    private readonly deps: WandbDeps,
    /** History rows in W&B form, index = line offset. Owned by the caller (grows while logging). */
    readonly rows: Array<Record<string, unknown>>,
    private readonly config: () => Record<string, unknown> | undefined,
    private readonly summary: () => Record<string, unknown>,
    private readonly pointerPath?: string,
  ) {}

  get info(): WandbRunInfo | undefined {
    if (!this.state.entity || !this.state.created) return undefined
    return {
      id: this.state.id,
      name: this.state.name,
      project: this.state.project,
      entity: this.state.entity,
      url: runUrl(this.client.baseUrl, this.state.entity, this.state.project, this.state.id),
    }
  }

  /** Persists state; writes are chained so the last one always carries the latest state. */
  save(): Promise<void> {
    const snapshot = JSON.stringify(this.state)
    this.saving = this.saving.then(() => writeWandbState(this.dir, JSON.parse(snapshot) as WandbState)).catch((error) => {
      this.deps.logger?.warn({err: (error as Error).message}, 'could not write wandb/state.json')
    })
    return this.saving
  }

  /**
   * One pass; never throws. Returns whether everything pending is now acknowledged.
   * Transient errors are retried within the pass (up to MAX_ERRORS_PER_PASS). An HTTP error
   * answer means the request was not applied, so it is resent as is; a lost connection may
   * have delivered it, so the run is re-attached first, which reads the server's history line
   * count and keeps resends from duplicating steps.
   */
  async pass(stats: PassStats): Promise<boolean> {
    let errors = 0
    for (;;) {
      try {
        await this.attach()
        await this.sendHistory(stats)
        await this.sendSummary(stats)
        await this.sendFiles(stats)
        await this.sendFinish(stats)
        if (this.state.failures !== 0 || this.state.lastError) {
          this.state.failures = 0
          delete this.state.lastError
          await this.save()
        }
        return true
      } catch (error) {
        errors += 1
        const transient = !(error instanceof WandbRequestError) || error.transient
        if (!(error instanceof WandbRequestError) || error.status === undefined) this.connected = false
        if (transient && errors < MAX_ERRORS_PER_PASS) {
          await this.deps.sleep(250 * errors)
          continue
        }
        this.connected = false
        this.state.failures += 1
        this.state.lastError = redactSecrets((error as Error).message, this.deps.env as NodeJS.ProcessEnv)
        this.deps.logger?.warn(
          {error: this.state.lastError, pendingLines: this.rows.length - this.state.historyAcked, permanent: !transient},
          'W&B upload failed; records stay queued in the run directory',
        )
        await this.save()
        return false
      }
    }
  }

  get pending(): {history: number; summary: boolean; files: number; finish: boolean} {
    const summary = this.summary()
    return {
      history: Math.max(0, this.rows.length - this.state.historyAcked),
      summary: Object.keys(summary).length > 0 && JSON.stringify(summary) !== this.state.summarySent,
      files: this.state.filesPending.length,
      finish: Boolean(this.state.finish && !this.state.finishAcked),
    }
  }

  private async attach(): Promise<void> {
    if (this.connected) return
    const s = this.state
    if (!s.entity) s.entity = (await this.client.viewer()).entity || undefined
    const config = this.config()
    const run = await this.client.upsertRun({
      name: s.id,
      project: s.project,
      entity: s.entity,
      displayName: s.name,
      groupName: s.group,
      jobType: s.job_type,
      tags: s.tags,
      notes: s.notes,
      config: config ? wrapConfig(config) : undefined,
    })
    s.entity = run.entity || s.entity
    s.created = true
    // The server's line count is the truth: a request whose answer was lost may have landed.
    s.historyAcked = Math.min(run.historyLineCount, this.rows.length)
    this.connected = true
    await this.save()
    const info = this.info
    if (info) {
      await writeJsonAtomic(wandbPaths(this.dir).runInfo, info)
      if (this.pointerPath) await writeJsonAtomic(this.pointerPath, info)
    }
  }

  private async sendHistory(stats: PassStats): Promise<void> {
    const s = this.state
    while (s.historyAcked < this.rows.length) {
      const chunk = this.rows.slice(s.historyAcked, s.historyAcked + HISTORY_CHUNK_LINES)
      await this.stream({files: {[HISTORY_FILE]: {offset: s.historyAcked, content: chunk.map((r) => JSON.stringify(r))}}})
      s.historyAcked += chunk.length
      stats.historySent += chunk.length
      await this.save()
    }
  }

  private async sendSummary(stats: PassStats): Promise<void> {
    const summary = this.summary()
    if (Object.keys(summary).length === 0) return
    const text = JSON.stringify(summary)
    if (text === this.state.summarySent) return
    // The summary is one line that W&B overwrites, so resending it is harmless.
    await this.stream({files: {[SUMMARY_FILE]: {offset: 0, content: [text]}}})
    this.state.summarySent = text
    stats.summarySent = true
    await this.save()
  }

  private async sendFiles(stats: PassStats): Promise<void> {
    const s = this.state
    const todo: Array<{name: string; size: number; mtimeMs: number}> = []
    for (const name of s.filesPending) {
      try {
        const st = await stat(join(this.dir.path, ...name.split('/')))
        const sent = s.filesSent[name]
        if (!sent || sent.size !== st.size || sent.mtimeMs !== st.mtimeMs) todo.push({name, size: st.size, mtimeMs: st.mtimeMs})
      } catch {
        this.deps.logger?.warn({file: name}, 'file to upload to W&B no longer exists; skipped')
      }
    }
    if (todo.length === 0) {
      s.filesPending = []
      return
    }
    // Upload URLs are kept until used, so a failed PUT is retried without asking again.
    const missing = todo.filter((f) => !this.uploadUrls.has(f.name)).map((f) => f.name)
    if (missing.length > 0) {
      const upload = await this.client.createRunFiles(s.entity ?? '', s.project, s.id, missing)
      for (const f of upload.files) this.uploadUrls.set(f.name, {url: f.uploadUrl, headers: upload.uploadHeaders ?? []})
    }
    for (const file of todo) {
      const target = this.uploadUrls.get(file.name)
      if (!target) throw new WandbRequestError(`W&B gave no upload URL for ${file.name}`, undefined, true)
      try {
        await this.client.uploadFile(target.url, await readFile(join(this.dir.path, ...file.name.split('/'))), target.headers)
      } catch (error) {
        // A refused URL (expired signature) is asked for again next time.
        if (error instanceof WandbRequestError && error.status !== undefined && error.status < 500) this.uploadUrls.delete(file.name)
        throw error
      }
      this.uploadUrls.delete(file.name)
      s.filesSent[file.name] = {size: file.size, mtimeMs: file.mtimeMs}
      stats.filesSent.push(file.name)
      await this.save()
    }
    // Tell the run the uploads are whole (deployments that cannot see storage events need it).
    await this.stream({uploaded: todo.map((f) => f.name)})
    s.filesPending = s.filesPending.filter((n) => !todo.some((f) => f.name === n))
    await this.save()
  }

  private async sendFinish(stats: PassStats): Promise<void> {
    const s = this.state
    if (!s.finish || s.finishAcked) return
    await this.stream({complete: true, exitcode: s.finish.exitcode})
    s.finishAcked = true
    stats.completed = true
    await this.save()
  }

  private stream(body: Parameters<WandbClient['fileStream']>[3]): Promise<void> {
    return this.client.fileStream(this.state.entity ?? '', this.state.project, this.state.id, body)
  }
}

/** A path the caller gave (absolute or run-dir relative) as a W&B file name; undefined if outside. */
export function wandbFileName(dir: RunDir, path: string): string | undefined {
  const rel = relative(dir.path, isAbsolute(path) ? path : join(dir.path, path))
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) return undefined
  return rel.split(sep).join('/')
}

/** Copies a row's metrics into a summary (W&B's default: the summary holds the last value). */
export function lastValues(rows: Array<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const row of rows) for (const [k, v] of Object.entries(row)) if (!k.startsWith('_')) out[k] = v
  return out
}
