/**
 * What the HTTP and rclone halves of `ups data fetch` share: the temp-file naming, the skip
 * check for a file that is already there, and verify-then-rename.
 */
import {createHash} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {rename, rm, stat} from 'node:fs/promises'
import {basename, join} from 'node:path'

import {ExitCode, UserError, fsError} from '../util/errors.js'
import {syncDir} from '../util/fs.js'
import type {Checksum, ChecksumAlgorithm, DataFetchResult, FetchDeps, FetchEvent, FetchOptions, FetchSource} from './fetch.js'

export function formatChecksum(c: Checksum): string {
  return `${c.algorithm}:${c.hex}`
}

/** What the source-specific halves share. */
export interface FetchContext {
  dir: string
  checksum?: Checksum
  retries: number
  emit: (event: FetchEvent) => void
  deps: FetchDeps
  options: FetchOptions
}

export function partPathFor(dir: string, name: string): string {
  return join(dir, `.${name}.part`)
}

/** Size of a file, or -1 when it does not exist. */
export async function sizeOf(path: string): Promise<number> {
  try {
    const s = await stat(path)
    if (!s.isFile()) throw fsError(Object.assign(new Error('not a file'), {code: 'EISDIR'}), path)
    return s.size
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return -1
    if (error instanceof UserError) throw error
    throw fsError(error, path)
  }
}

export async function hashFile(path: string, algorithm: ChecksumAlgorithm, end?: number): Promise<string> {
  const hash = createHash(algorithm)
  if (end === 0) return hash.digest('hex')
  try {
    for await (const chunk of createReadStream(path, {start: 0, end: end === undefined ? undefined : end - 1, highWaterMark: 1 << 20})) {
      hash.update(chunk as Buffer)
    }
  } catch (error) {
    throw fsError(error, path)
  }
  return hash.digest('hex')
}

/**
 * An existing destination file: skipped when its checksum matches (or, with no checksum to
 * check, when `sizeMatches` says so); otherwise null and the caller fetches it again.
 */
export async function checkExisting(
  ctx: FetchContext,
  source: FetchSource,
  finalPath: string,
  sizeMatches?: (size: number) => boolean,
): Promise<DataFetchResult | null> {
  const size = await sizeOf(finalPath)
  if (size < 0 || ctx.options.force) return null
  const skipped = {source: source.display, path: finalPath, bytes: size, resumed: false, attempts: 0, skipped: true}
  if (!ctx.checksum) {
    if (sizeMatches && !sizeMatches(size)) {
      ctx.emit({type: 'note', message: `${finalPath} exists with a different size (${size} bytes): fetching it again.`})
      return null
    }
    return {...skipped, checksum: null, verified: false}
  }
  ctx.emit({type: 'verify', algorithm: ctx.checksum.algorithm, path: finalPath})
  const actual = await hashFile(finalPath, ctx.checksum.algorithm)
  if (actual === ctx.checksum.hex) return {...skipped, checksum: `${ctx.checksum.algorithm}:${actual}`, verified: true}
  ctx.emit({
    type: 'note',
    message: `${finalPath} exists but its ${ctx.checksum.algorithm} is ${actual}, not ${ctx.checksum.hex}: fetching it again.`,
  })
  return null
}

/**
 * Checks a complete temp file and moves it into place. On a mismatch the temp file is deleted
 * (resuming onto bad bytes would fail forever) and nothing appears under the final name.
 */
export async function verifyAndCommit(
  ctx: FetchContext,
  source: FetchSource,
  partPath: string,
  finalPath: string,
  actualHex: string,
  algorithm: ChecksumAlgorithm,
): Promise<{checksum: string; verified: boolean; bytes: number}> {
  const bytes = await sizeOf(partPath)
  if (ctx.checksum && actualHex !== ctx.checksum.hex) {
    await rm(partPath, {force: true})
    throw new UserError(
      `Checksum mismatch for ${basename(finalPath)} from ${source.display}: expected ${formatChecksum(ctx.checksum)}, ` +
        `got ${algorithm}:${actualHex} (${bytes} bytes). The download was discarded; nothing was written to ${finalPath}.`,
      {
        code: 'DATA_FETCH_CHECKSUM_MISMATCH',
        hint: "Check the checksum against the data set's manifest; if it is right, the source sent corrupt data: rerun the same command to fetch it again.",
        exitCode: ExitCode.CHECK_FAILED,
        details: {expected: formatChecksum(ctx.checksum), actual: `${algorithm}:${actualHex}`, bytes},
      },
    )
  }
  try {
    await rename(partPath, finalPath)
  } catch (error) {
    throw fsError(error, finalPath)
  }
  await syncDir(ctx.dir)
  return {checksum: `${algorithm}:${actualHex}`, verified: ctx.checksum !== undefined, bytes}
}

/** The destination file name: --name, else the source's last path segment. */
export function targetName(source: FetchSource, name?: string): string {
  let candidate = name
  if (candidate === undefined) {
    const raw = source.kind === 'http' ? source.url.pathname : source.path
    candidate = basename(raw.replace(/\/+$/, ''))
    try {
      candidate = decodeURIComponent(candidate)
    } catch {
      // Keep the raw segment: a stray % is still a usable file name.
    }
  }
  if (!candidate || candidate === '.' || candidate === '..' || /[/\\\0]/.test(candidate)) {
    throw new UserError(
      name === undefined
        ? `Cannot tell a file name from ${source.display}.`
        : `--name "${name}" is not a plain file name.`,
      {code: 'DATA_FETCH_BAD_NAME', hint: 'Pass --name FILE (a name without slashes), e.g. --name 1D_Burgers_Sols_Nu0.01.hdf5.', exitCode: ExitCode.USAGE},
    )
  }
  return candidate
}
