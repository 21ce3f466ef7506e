/**
 * The rclone half of `ups data fetch` (`rclone:REMOTE:path`), as in the runbook's INC-002
 * re-download step. A single file is copied with `rclone copyto` into `.<name>.part`, verified,
 * then renamed into place; a folder is copied with `rclone copy` (rclone compares sizes and
 * times itself). rclone's own retries apply; progress comes from its JSON stats lines.
 */
import {join} from 'node:path'

import {ExitCode, UserError} from '../util/errors.js'
import {type FetchContext, checkExisting, hashFile, partPathFor, sizeOf, targetName, verifyAndCommit} from './fetch-core.js'
import type {DataFetchResult, FetchSource} from './fetch.js'

type RcloneSource = Extract<FetchSource, {kind: 'rclone'}>

interface RcloneStat {
  Size: number
  IsDir: boolean
  Name: string
}

const STATS_FLAGS = ['--use-json-log', '--stats', '1s', '--stats-log-level', 'NOTICE']

export async function fetchRclone(source: RcloneSource, ctx: FetchContext): Promise<DataFetchResult> {
  const bin = ctx.deps.rcloneBin ?? 'rclone'
  const stat = await statRemote(source, ctx, bin)

  if (stat.IsDir) {
    if (ctx.checksum || ctx.options.name) {
      throw new UserError(`${source.display} is a folder; --checksum and --name apply to a single file.`, {
        code: 'DATA_FETCH_RCLONE_FOLDER',
        hint: `Name one file (e.g. ${source.display.replace(/\/?$/, '/')}<file>.h5), or drop --checksum/--name to copy the folder.`,
        exitCode: ExitCode.USAGE,
      })
    }
    const run = await runCopy(source, ctx, bin, ['copy', source.spec, ctx.dir], undefined)
    return {source: source.display, path: ctx.dir, bytes: run.bytes, checksum: null, verified: false, resumed: false, attempts: run.attempts, skipped: false}
  }

  const name = targetName(source, ctx.options.name)
  const finalPath = join(ctx.dir, name)
  const existing = await checkExisting(ctx, source, finalPath, (size) => size === stat.Size)
  if (existing) return existing

  const partPath = partPathFor(ctx.dir, name)
  ctx.emit({type: 'start', source: source.display, path: finalPath, offset: 0, total: stat.Size, attempt: 1})
  const run = await runCopy(source, ctx, bin, ['copyto', source.spec, partPath], stat.Size)
  if ((await sizeOf(partPath)) < 0) {
    throw new UserError(`rclone reported success but ${partPath} was not written.`, {code: 'DATA_FETCH_RCLONE_FAILED', exitCode: ExitCode.EXTERNAL})
  }
  const algorithm = ctx.checksum?.algorithm ?? 'md5'
  ctx.emit({type: 'verify', algorithm, path: partPath}) // hashed even unasked: the result reports it
  const actual = await hashFile(partPath, algorithm)
  const committed = await verifyAndCommit(ctx, source, partPath, finalPath, actual, algorithm)
  return {source: source.display, path: finalPath, ...committed, resumed: false, attempts: run.attempts, skipped: false}
}

async function statRemote(source: RcloneSource, ctx: FetchContext, bin: string): Promise<RcloneStat> {
  const result = await ctx.deps.runner.run(bin, ['lsjson', '--stat', source.spec], {env: ctx.deps.env})
  if (result.exitCode !== 0) throw rcloneError(result, source, bin)
  try {
    const parsed = JSON.parse(result.stdout) as RcloneStat
    if (typeof parsed.IsDir !== 'boolean') throw new Error('no IsDir')
    return {Size: Number(parsed.Size ?? -1), IsDir: parsed.IsDir, Name: String(parsed.Name ?? '')}
  } catch {
    throw new UserError(`\`${bin} lsjson --stat ${source.spec}\` printed something that is not a file description.`, {
      code: 'DATA_FETCH_RCLONE_FAILED',
      hint: 'Check the rclone version (`rclone version`, 1.57 or newer).',
      exitCode: ExitCode.EXTERNAL,
    })
  }
}

async function runCopy(
  source: RcloneSource,
  ctx: FetchContext,
  bin: string,
  args: string[],
  size: number | undefined,
): Promise<{bytes: number; attempts: number}> {
  let bytes = 0
  let attempts = 1
  const startedAt = ctx.deps.now()
  const onStderrLine = (line: string) => {
    const failed = /Attempt (\d+)\/(\d+) failed/.exec(line)
    if (failed) attempts = Math.min(Number(failed[2]), Number(failed[1]) + 1)
    if (!line.startsWith('{')) return
    let entry: {stats?: {bytes?: number; totalBytes?: number}}
    try {
      entry = JSON.parse(line)
    } catch {
      return
    }
    if (entry.stats && typeof entry.stats.bytes === 'number') {
      bytes = entry.stats.bytes
      const total = entry.stats.totalBytes || size
      const elapsed = ctx.deps.now() - startedAt
      ctx.emit({type: 'progress', bytes, total, rateBps: elapsed > 0 ? (bytes * 1000) / elapsed : 0})
    }
  }
  const fullArgs = [...args, ...STATS_FLAGS, '--retries', String(ctx.retries + 1)]
  const result = await ctx.deps.runner.run(bin, fullArgs, {env: ctx.deps.env, onStderrLine})
  if (result.exitCode !== 0) throw rcloneError(result, source, bin)
  return {bytes, attempts}
}

/** rclone's exit codes: 3 directory not found, 4 file not found; the rest say little, so quote stderr. */
function rcloneError(result: {exitCode: number; stderr: string; missing?: boolean}, source: RcloneSource, bin: string): UserError {
  if (result.missing) {
    return new UserError(`rclone is not installed here (\`${bin}\` was not found), so ${source.display} cannot be copied.`, {
      code: 'DATA_FETCH_RCLONE_MISSING',
      hint: 'Install it (Debian/Ubuntu: `apt-get install rclone`), configure the remote with `rclone config`, then rerun.',
      exitCode: ExitCode.EXTERNAL,
    })
  }
  const stderr = result.stderr
  const last = lastErrorLine(stderr)
  if (/didn't find section in config file|config file .*not found/i.test(stderr)) {
    return new UserError(`rclone has no remote named "${source.remote}".`, {
      code: 'DATA_FETCH_RCLONE_REMOTE',
      hint: 'List the configured remotes with `rclone listremotes`; add one with `rclone config` (or point RCLONE_CONFIG at the config file).',
      exitCode: ExitCode.EXTERNAL,
      details: {rcloneExitCode: result.exitCode},
    })
  }
  if (result.exitCode === 3 || result.exitCode === 4 || /not found/i.test(last)) {
    return new UserError(`${source.display} does not exist on the remote (rclone: ${last || 'not found'}).`, {
      code: 'DATA_FETCH_NOT_FOUND',
      hint: `List what is there with \`rclone lsf ${source.remote}:${parentOf(source.path)}\`.`,
      exitCode: ExitCode.EXTERNAL,
      details: {rcloneExitCode: result.exitCode},
    })
  }
  return new UserError(`rclone failed (exit ${result.exitCode}) copying ${source.display}: ${last || 'no error message'}.`, {
    code: 'DATA_FETCH_RCLONE_FAILED',
    hint: `Rerun with \`rclone -vv lsjson --stat ${source.spec}\` to see what the remote says.`,
    exitCode: ExitCode.EXTERNAL,
    details: {rcloneExitCode: result.exitCode},
  })
}

/** The last line that says something, from plain or JSON log output. */
function lastErrorLine(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean)
  for (let i = lines.length - 1; i >= 0; i--) {
    let line = lines[i]
    if (line.startsWith('{')) {
      try {
        const entry = JSON.parse(line) as {level?: string; msg?: string; stats?: unknown}
        if (entry.stats || (entry.level !== 'error' && entry.level !== 'critical')) continue
        line = entry.msg ?? line
      } catch {
        // not JSON after all
      }
    }
    return line.replace(/^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d\s+/, '').replace(/^(ERROR|CRITICAL|NOTICE)\s*:\s*/, '').trim()
  }
  return ''
}

function parentOf(path: string): string {
  const i = path.replace(/\/+$/, '').lastIndexOf('/')
  return i > 0 ? path.slice(0, i) : ''
}
