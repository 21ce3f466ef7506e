/**
 * The real dependencies of `ups launch`, `monitor`, `watchdog` and `recover`: git through
 * execa, the launch record file, the wall clock, a detached watchdog process. Tests pass fakes
 * to the modules instead.
 */
import {Flags} from '@oclif/core'
import {spawn} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {mkdirSync, openSync} from 'node:fs'
import {homedir} from 'node:os'
import {dirname, join} from 'node:path'
import {execa} from 'execa'

import {mkdir, readdir} from 'node:fs/promises'

import {loadConfig} from '../config/index.js'
import {type CheckpointCopier, type MonitorDeps, parseDuration} from '../ops/index.js'
import {kernelCachePath} from '../pipeline/kernel-cache.js'
import {dryRunEstimateFn} from '../pipeline/launch-estimate.js'
import type {Logger} from '../util/logger.js'
import {type GitRunner, type LaunchDeps} from '../vast/index.js'
import {realLaunchesFile, realSleep, realVastProvider} from './vast.js'

export const gitRunner: GitRunner = async (args, cwd) => {
  const r = await execa('git', args, {cwd, reject: false, stdin: 'ignore'})
  if ((r as {code?: string}).code === 'ENOENT') throw new Error('git is not installed')
  return {stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), exitCode: r.exitCode ?? 1}
}

export {realLaunchesFile}

/** The same file, under the name the analysis commands use. */
export const realLaunchRecordsPath = realLaunchesFile

/** Starts `ups watchdog ID` detached, its output in `<UPS_HOME>/watchdog/<id>.log`; returns the pid. */
export function detachedWatchdog(binPath: string, flags: {'vastai-bin'?: string}): (id: number) => Promise<number> {
  return async (id) => {
    const log = join(dirname(realLaunchesFile()), 'watchdog', `${id}.log`)
    mkdirSync(dirname(log), {recursive: true})
    const fd = openSync(log, 'a')
    const args = [binPath, 'watchdog', String(id), ...(flags['vastai-bin'] ? ['--vastai-bin', flags['vastai-bin']] : [])]
    const child = spawn(process.execPath, args, {detached: true, stdio: ['ignore', fd, fd], env: process.env, cwd: process.cwd()})
    child.unref()
    if (child.pid === undefined) throw new Error('could not start the watchdog process')
    return child.pid
  }
}

export function realLaunchDeps(flags: {'vastai-bin'?: string}, logger: Logger, onStage?: LaunchDeps['onStage']): LaunchDeps {
  return {
    provider: realVastProvider(flags, logger),
    git: gitRunner,
    // The same estimate `ups dry-run` prints: two timed steps per stage, scaled to the GPU.
    estimate: dryRunEstimateFn({cwd: process.cwd(), now: () => performance.now(), kernelCacheFile: kernelCachePath(process.env, homedir())}),
    now: () => new Date(),
    sleep: realSleep,
    randomHex: () => randomBytes(2).toString('hex'),
    env: process.env,
    cwd: process.cwd(),
    launchesFile: realLaunchesFile(),
    onStage,
  }
}

export function realMonitorDeps(flags: {'vastai-bin'?: string}, logger: Logger): MonitorDeps & {sleep: (ms: number) => Promise<void>} {
  return {
    provider: realVastProvider(flags, logger),
    launchesFile: realLaunchesFile(),
    now: () => new Date(),
    sleep: realSleep,
    loadMonitorSettings: async (path) => (await loadConfig(path)).config.monitor,
  }
}

/** A duration flag in milliseconds: 90s, 15m, 1h; a bare number is seconds. */
export const durationFlag = Flags.custom<number>({
  async parse(input, _context, options) {
    return parseDuration(input, options.name ?? 'duration', 's')
  },
})

export const realNow = (): Date => new Date()

/**
 * Copies a folder off an instance with `scp -r` (from PATH): batch mode (never prompts), a
 * connect timeout, and a 30-minute cap. The reason of a failure is scp's last stderr line.
 */
export const scpCopier: CheckpointCopier = async ({sshUrl, remotePath, localDir}) => {
  const m = /^ssh:\/\/([^@\s]+)@([^:\s]+):(\d+)$/.exec(sshUrl)
  if (!m) return {ok: false, reason: `cannot use the SSH address ${sshUrl}`}
  await mkdir(localDir, {recursive: true})
  const r = await execa(
    'scp',
    ['-r', '-q', '-P', m[3], '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=20', '-o', 'StrictHostKeyChecking=accept-new', `${m[1]}@${m[2]}:${remotePath}`, localDir],
    {reject: false, timeout: 30 * 60_000, stdin: 'ignore'},
  )
  if ((r as unknown as {code?: string}).code === 'ENOENT') return {ok: false, reason: 'scp is not installed'}
  if (r.exitCode !== 0) {
    const last = String(r.stderr ?? '').trim().split('\n').at(-1)
    return {ok: false, reason: `scp failed${r.timedOut ? ' (timed out)' : ''}: ${last || `exit ${r.exitCode}`}`}
  }
  return {ok: true, files: await countFiles(localDir)}
}

async function countFiles(dir: string): Promise<number> {
  let n = 0
  for (const e of await readdir(dir, {withFileTypes: true})) {
    if (e.isDirectory()) n += await countFiles(join(dir, e.name))
    else if (e.isFile()) n += 1
  }
  return n
}
