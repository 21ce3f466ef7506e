/**
 * `ups data fetch`: bring one data file into a folder, completely or not at all.
 * HTTP(S) downloads resume from a `.<name>.part` file kept beside the destination, retry with
 * backoff, and are verified before an atomic rename; `rclone:REMOTE:path` sources are copied by
 * the rclone CLI into the same kind of temp file. See fetch-http-download.ts and fetch-rclone.ts.
 */
import {mkdir} from 'node:fs/promises'
import {resolve} from 'node:path'

import {ExitCode, UserError, fsError} from '../util/errors.js'
import {type FetchContext, targetName} from './fetch-core.js'
import {downloadHttp} from './fetch-http-download.js'
import type {HttpGet} from './fetch-http.js'
import {fetchRclone} from './fetch-rclone.js'

export type ChecksumAlgorithm = 'md5' | 'sha256'

export interface Checksum {
  algorithm: ChecksumAlgorithm
  /** Lower-case hex digest. */
  hex: string
}

export {targetName}

export type FetchSource =
  | {kind: 'http'; url: URL; display: string}
  | {kind: 'rclone'; remote: string; path: string; spec: string; display: string}

/** What the command renders as progress. */
export type FetchEvent =
  | {type: 'start'; source: string; path: string; offset: number; total?: number; attempt: number}
  | {type: 'progress'; bytes: number; total?: number; rateBps: number}
  /** `retry` counts consecutive failures without progress, up to `retries`. */
  | {type: 'retry'; retry: number; retries: number; delayMs: number; reason: string}
  | {type: 'note'; message: string}
  | {type: 'verify'; algorithm: ChecksumAlgorithm; path: string}

export interface CommandResult {
  exitCode: number
  stdout: string
  stderr: string
  /** The program itself was not found. */
  missing?: boolean
}

export interface CommandRunner {
  run(
    command: string,
    args: string[],
    options: {env?: Record<string, string | undefined>; onStderrLine?: (line: string) => void},
  ): Promise<CommandResult>
}

export interface FetchDeps {
  http: HttpGet
  runner: CommandRunner
  sleep(ms: number): Promise<void>
  /** Milliseconds since the epoch. */
  now(): number
  /** Uniform in [0, 1), for backoff jitter. */
  random(): number
  env: Record<string, string | undefined>
  /** The rclone executable (default `rclone`). */
  rcloneBin?: string
}

export interface FetchOptions {
  /** Destination folder (created when missing). */
  to: string
  /** File name in `to`; default: the last segment of the URL or remote path. */
  name?: string
  /** `md5:HEX`, `sha256:HEX`, or parsed. */
  checksum?: string | Checksum
  /** Retries after the first attempt, per stretch of no progress (default 5). */
  retries?: number
  /** Download again even when the file exists. */
  force?: boolean
  /** Abort a connection idle this long (default 60 s). */
  idleTimeoutMs?: number
  onEvent?: (event: FetchEvent) => void
}

export interface DataFetchResult {
  /** The source as given, with any password or signature in it redacted. */
  source: string
  /** Absolute path of the file (or folder, for an rclone folder copy). */
  path: string
  /** Size of the file (for a folder copy: bytes transferred). */
  bytes: number
  /** `algorithm:hex` of the file as it is on disk; null when not computed. */
  checksum: string | null
  /** True when a --checksum was given and matched. */
  verified: boolean
  /** True when the download continued a `.part` file instead of starting from byte 0. */
  resumed: boolean
  /** Requests (HTTP) or rclone attempts made; 0 when skipped. */
  attempts: number
  /** True when the file was already there and nothing was transferred. */
  skipped: boolean
}

const HEX_LENGTH: Record<ChecksumAlgorithm, number> = {md5: 32, sha256: 64}

export function parseChecksum(spec: string): Checksum {
  const m = /^(md5|sha256):([0-9a-f]+)$/i.exec(spec.trim())
  const algorithm = m?.[1].toLowerCase() as ChecksumAlgorithm | undefined
  if (!m || !algorithm || m[2].length !== HEX_LENGTH[algorithm]) {
    throw new UserError(`--checksum "${spec}" is not valid: expected md5:<32 hex digits> or sha256:<64 hex digits>.`, {
      code: 'DATA_FETCH_BAD_CHECKSUM',
      hint: "Copy the checksum from the data set's manifest, e.g. --checksum md5:e6d9a4f62baf9a29121a816b919e2770.",
      exitCode: ExitCode.USAGE,
    })
  }
  return {algorithm, hex: m[2].toLowerCase()}
}

export function parseSource(source: string): FetchSource {
  const usage = (reason: string) =>
    new UserError(`SOURCE "${redactUrl(source)}" ${reason}.`, {
      code: 'DATA_FETCH_BAD_SOURCE',
      hint: 'Use an http(s):// URL or rclone:REMOTE:path (e.g. rclone:B2:pdebench/full/burgers1d/burgers1d_train_000.h5).',
      exitCode: ExitCode.USAGE,
    })
  if (source.startsWith('rclone:')) {
    const spec = source.slice('rclone:'.length)
    const m = /^([^:/\\\s][^:/\\]*):(.*)$/.exec(spec)
    if (!m) throw usage('is not an rclone source: expected rclone:REMOTE:path')
    return {kind: 'rclone', remote: m[1], path: m[2], spec, display: source}
  }
  let url: URL
  try {
    url = new URL(source)
  } catch {
    throw usage('is neither a URL nor an rclone source')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw usage(`uses ${url.protocol}, which is not supported`)
  return {kind: 'http', url, display: redactUrl(source)}
}

/** Hides a URL's password and signature-like query values (pre-signed storage links). */
export function redactUrl(text: string): string {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return text
  }
  if (url.password) url.password = 'REDACTED'
  for (const key of [...url.searchParams.keys()]) {
    if (/sig|token|key|secret|credential|auth|password/i.test(key)) url.searchParams.set(key, 'REDACTED')
  }
  return url.toString()
}

export async function fetchData(source: string, options: FetchOptions, deps: FetchDeps): Promise<DataFetchResult> {
  const parsed = parseSource(source)
  const checksum = typeof options.checksum === 'string' ? parseChecksum(options.checksum) : options.checksum
  const retries = options.retries ?? 5
  if (!Number.isInteger(retries) || retries < 0) {
    throw new UserError(`--retries ${retries} must be a whole number >= 0.`, {code: 'DATA_FETCH_BAD_RETRIES', exitCode: ExitCode.USAGE})
  }
  const dir = resolve(options.to)
  try {
    await mkdir(dir, {recursive: true})
  } catch (error) {
    throw fsError(error, dir, 'destination folder')
  }
  const ctx: FetchContext = {dir, checksum, retries, emit: options.onEvent ?? (() => {}), deps, options}
  const r = parsed.kind === 'rclone' ? await fetchRclone(parsed, ctx) : await downloadHttp(parsed, ctx)
  // One key order for the --json contract, whichever path produced it.
  return {source: r.source, path: r.path, bytes: r.bytes, checksum: r.checksum, verified: r.verified, resumed: r.resumed, attempts: r.attempts, skipped: r.skipped}
}
