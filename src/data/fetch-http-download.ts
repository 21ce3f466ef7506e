/**
 * The HTTP(S) half of `ups data fetch`: a resumable, retried download into `.<name>.part`.
 * The part file survives failures and reruns; a sidecar `.<name>.part.json` remembers the URL and
 * the server's validator (ETag / Last-Modified) so a resume never splices two versions of a file.
 */
import {createHash, type Hash} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {open, readFile, rm, truncate} from 'node:fs/promises'
import {join} from 'node:path'

import {ExitCode, UserError, fsError} from '../util/errors.js'
import {writeJsonAtomic} from '../util/fs.js'
import {type FetchContext, checkExisting, partPathFor, sizeOf, targetName, verifyAndCommit} from './fetch-core.js'
import {NetworkError, toNetworkError} from './fetch-http.js'
import type {ChecksumAlgorithm, DataFetchResult, FetchSource} from './fetch.js'

const BACKOFF_BASE_MS = 1_000
const BACKOFF_CAP_MS = 60_000
const RETRY_AFTER_CAP_MS = 10 * 60_000
const PROGRESS_EVERY_MS = 100

type HttpSource = Extract<FetchSource, {kind: 'http'}>

interface PartMeta {
  url: string
  validator?: string
}

/** A failure worth another attempt; `retryAfterMs` when the server said how long to wait. */
class TransientError extends Error {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message)
  }
}

/** Hashes the part file as it grows; re-reads the prefix only when it lost track (restart, rerun). */
class RunningHash {
  private hash: Hash
  private bytes = 0
  constructor(private readonly algorithm: ChecksumAlgorithm) {
    this.hash = createHash(algorithm)
  }

  async syncTo(path: string, offset: number): Promise<void> {
    if (this.bytes === offset) return
    this.hash = createHash(this.algorithm)
    this.bytes = 0
    if (offset === 0) return
    try {
      for await (const chunk of createReadStream(path, {start: 0, end: offset - 1, highWaterMark: 1 << 20})) this.update(chunk as Buffer)
    } catch (error) {
      throw fsError(error, path)
    }
  }

  update(chunk: Uint8Array): void {
    this.hash.update(chunk)
    this.bytes += chunk.length
  }

  digest(): string {
    return this.hash.digest('hex')
  }
}

export async function downloadHttp(source: HttpSource, ctx: FetchContext): Promise<DataFetchResult> {
  const {dir, deps, emit} = ctx
  const name = targetName(source, ctx.options.name)
  const finalPath = join(dir, name)
  const partPath = partPathFor(dir, name)
  const metaPath = `${partPath}.json`

  const existing = await checkExisting(ctx, source, finalPath)
  if (existing) return existing

  const algorithm = ctx.checksum?.algorithm ?? 'md5'
  const running = new RunningHash(algorithm)
  const url = source.url.toString()
  let meta = await readMeta(metaPath)
  if ((await sizeOf(partPath)) > 0 && meta?.url !== url) {
    // A part file from another URL (or without a record) cannot be trusted as a prefix.
    await rm(partPath, {force: true})
    meta = undefined
  }

  let attempts = 0
  let failures = 0
  let furthest = Math.max(0, await sizeOf(partPath))
  let resumed = false
  let restarts = 0
  const maxAttempts = ctx.retries + 1
  for (;;) {
    attempts++
    try {
      const outcome = await attempt()
      if (outcome === 'done') break
      // The server refused the range: start over at once (not a failure), but not forever.
      if (++restarts > 3) {
        throw new UserError(`The server for ${source.display} keeps answering byte ranges that were not asked for.`, {
          code: 'DATA_FETCH_BAD_RANGE',
          hint: 'Report it to the host; meanwhile try another mirror of the file.',
          exitCode: ExitCode.EXTERNAL,
        })
      }
      continue
    } catch (error) {
      if (!(error instanceof TransientError)) throw error
      const size = Math.max(0, await sizeOf(partPath))
      // Progress resets the budget: a long file over a flaky link finishes eventually.
      if (size > furthest) {
        furthest = size
        failures = 0
      }
      failures++
      if (failures >= maxAttempts) {
        throw new UserError(
          `Gave up downloading ${source.display} after ${attempts} attempts: ${error.message}.`,
          {
            code: 'DATA_FETCH_NETWORK',
            hint:
              size > 0
                ? `${size} bytes are kept in ${partPath}; rerun the same command to resume from there.`
                : 'Check the network and the URL, then rerun (raise --retries for a flaky link).',
            exitCode: ExitCode.EXTERNAL,
          },
        )
      }
      const delayMs = error.retryAfterMs ?? backoffMs(failures, deps.random())
      emit({type: 'retry', retry: failures, retries: ctx.retries, delayMs, reason: error.message})
      await deps.sleep(delayMs)
    }
  }

  if (ctx.checksum) emit({type: 'verify', algorithm, path: partPath})
  const size = await sizeOf(partPath)
  await running.syncTo(partPath, size)
  let committed
  try {
    committed = await verifyAndCommit(ctx, source, partPath, finalPath, running.digest(), algorithm)
  } finally {
    // Its part file is now either renamed or (on a mismatch) deleted.
    if ((await sizeOf(partPath)) < 0) await rm(metaPath, {force: true})
  }
  return {source: source.display, path: finalPath, ...committed, resumed, attempts, skipped: false}

  /** One request; 'done' when the part file holds the whole file, 'restart' to go again now. */
  async function attempt(): Promise<'done' | 'restart'> {
    let offset = Math.max(0, await sizeOf(partPath))
    const headers: Record<string, string> = {}
    if (offset > 0) {
      headers.range = `bytes=${offset}-`
      if (meta?.validator) headers['if-range'] = meta.validator
    }
    let res
    try {
      res = await deps.http(source.url, {headers, timeoutMs: ctx.options.idleTimeoutMs ?? 60_000})
    } catch (error) {
      throw networkFailure(error)
    }
    try {
      const status = res.status
      if (status === 416 && offset > 0) {
        const total = parseContentRange(res.headers['content-range'])?.total
        if (total === offset) return 'done' // an earlier run stopped between the last byte and the rename
        emit({type: 'note', message: `The server rejected resuming at byte ${offset}; starting over.`})
        await resetPart()
        return 'restart'
      }
      if (status === 429 || status === 408 || status >= 500) {
        throw new TransientError(`HTTP ${status}${res.headers['retry-after'] ? ` (Retry-After: ${res.headers['retry-after']})` : ''}`, parseRetryAfter(res.headers['retry-after'], deps.now()))
      }
      if (status !== 200 && status !== 206) throw httpError(status, source)

      let total: number | undefined
      if (status === 206) {
        const range = parseContentRange(res.headers['content-range'])
        if (!range || range.start !== offset) {
          emit({type: 'note', message: `The server answered a different range (${res.headers['content-range'] ?? 'none'}); starting over.`})
          await resetPart()
          return 'restart'
        }
        total = range.total
        resumed = true
      } else {
        if (offset > 0) emit({type: 'note', message: `The server did not resume at byte ${offset} (HTTP 200, no range support or the file changed); starting over.`})
        offset = 0
        const length = Number(res.headers['content-length'])
        total = Number.isFinite(length) && res.headers['content-length'] !== undefined ? length : undefined
        meta = {url, validator: strongValidator(res.headers)}
        await writeJsonAtomic(metaPath, meta).catch((error: unknown) => {
          throw fsError(error, metaPath)
        })
        resumed = false
      }
      await running.syncTo(partPath, offset)
      emit({type: 'start', source: source.display, path: join(dir, name), offset, total, attempt: attempts})

      let received = offset
      let handle
      try {
        handle = await open(partPath, offset > 0 ? 'a' : 'w')
      } catch (error) {
        throw fsError(error, partPath)
      }
      const startedAt = deps.now()
      let lastEmit = startedAt
      try {
        for await (const chunk of res.body) {
          try {
            await handle.write(chunk)
          } catch (error) {
            throw fsError(error, partPath)
          }
          running.update(chunk)
          received += chunk.length
          const now = deps.now()
          if (now - lastEmit >= PROGRESS_EVERY_MS) {
            lastEmit = now
            emit({type: 'progress', bytes: received, total, rateBps: rate(received - offset, now - startedAt)})
          }
        }
      } catch (error) {
        if (error instanceof UserError) throw error
        throw networkFailure(error, received, total)
      } finally {
        await handle.sync().catch(() => {})
        await handle.close()
      }
      emit({type: 'progress', bytes: received, total, rateBps: rate(received - offset, deps.now() - startedAt)})
      if (total !== undefined && received < total) {
        throw new TransientError(`the connection closed after ${received} of ${total} bytes`)
      }
      if (total !== undefined && received > total) {
        await resetPart()
        throw new TransientError(`the server sent ${received} bytes for a ${total}-byte file`)
      }
      return 'done'
    } finally {
      res.close()
    }
  }

  async function resetPart(): Promise<void> {
    try {
      await truncate(partPath, 0)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw fsError(error, partPath)
    }
  }
}

function networkFailure(error: unknown, received?: number, total?: number): Error {
  if (error instanceof UserError || error instanceof TransientError) return error
  const net = error instanceof NetworkError ? error : toNetworkError(error)
  const where = received !== undefined ? ` after ${received}${total !== undefined ? ` of ${total}` : ''} bytes` : ''
  const message = `${net.message}${net.code && !net.message.includes(net.code) ? ` (${net.code})` : ''}${where}`
  if (net.retryable) return new TransientError(message)
  return new UserError(`Cannot download: ${message}.`, {
    code: 'DATA_FETCH_NETWORK',
    hint: net.code === 'ENOTFOUND' ? 'Check the host name in the URL.' : 'Check the URL and the TLS setup of this machine.',
    exitCode: ExitCode.EXTERNAL,
    cause: error,
  })
}

function httpError(status: number, source: HttpSource): UserError {
  const reasons: Record<number, string> = {
    401: 'needs authentication',
    403: 'is forbidden (no access, or an expired link)',
    404: 'was not found',
    410: 'is gone',
  }
  return new UserError(`HTTP ${status}: ${source.display} ${reasons[status] ?? 'was refused'}.`, {
    code: `DATA_FETCH_HTTP_${status}`,
    hint:
      status === 404 || status === 410
        ? 'Check the URL (PDEBench lists each file with its URL and MD5 in pdebench_data_urls.csv).'
        : status === 401 || status === 403
          ? 'Check that the link is public or still valid; pre-signed links expire.'
          : 'Check the URL; this status is not retried.',
    exitCode: ExitCode.EXTERNAL,
    details: {status},
  })
}

/** Exponential backoff with jitter in [0.5, 1) of the step, so many clients do not retry in lockstep. */
export function backoffMs(failures: number, random: number): number {
  const step = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (failures - 1))
  return Math.round(step * (0.5 + random / 2))
}

/** Retry-After is seconds or an HTTP date; capped so a hostile header cannot park us for a day. */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined || value.trim() === '') return undefined
  const trimmed = value.trim()
  const ms = /^\d+$/.test(trimmed) ? Number(trimmed) * 1000 : Date.parse(trimmed) - now
  if (!Number.isFinite(ms)) return undefined
  return Math.min(RETRY_AFTER_CAP_MS, Math.max(0, ms))
}

export function parseContentRange(value: string | undefined): {start?: number; end?: number; total?: number} | undefined {
  if (!value) return undefined
  const m = /^bytes\s+(?:(\d+)-(\d+)|\*)\/(\d+|\*)$/i.exec(value.trim())
  if (!m) return undefined
  return {
    start: m[1] === undefined ? undefined : Number(m[1]),
    end: m[2] === undefined ? undefined : Number(m[2]),
    total: m[3] === '*' ? undefined : Number(m[3]),
  }
}

/** If-Range needs a strong ETag; a weak one would make every resume restart, so use the date then. */
function strongValidator(headers: Record<string, string | undefined>): string | undefined {
  const etag = headers.etag
  if (etag && !etag.startsWith('W/')) return etag
  return headers['last-modified']
}

async function readMeta(path: string): Promise<PartMeta | undefined> {
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as PartMeta
    return typeof parsed?.url === 'string' ? parsed : undefined
  } catch {
    return undefined
  }
}

function rate(bytes: number, ms: number): number {
  return ms > 0 ? (bytes * 1000) / ms : 0
}
