/** The real side effects of the operations commands: the clock, launch records, scp. */
import {execa} from 'execa'
import {mkdir, readdir} from 'node:fs/promises'
import {homedir} from 'node:os'
import {join} from 'node:path'

import {launchRecordsPath, type CheckpointCopier} from '../ops/index.js'

export function realLaunchRecordsPath(): string {
  return launchRecordsPath(process.env, homedir())
}

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
