/** Lock files: held, stale (dead pid, other host, empty), reclaimed, released; temp-file leftovers. */
import assert from 'node:assert/strict'
import {type ChildProcess, spawn} from 'node:child_process'
import {mkdir, readdir, readFile, stat, utimes, writeFile} from 'node:fs/promises'
import {hostname} from 'node:os'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {UserError} from '../../src/util/errors.js'
import {removeStaleTempFiles} from '../../src/util/fs.js'
import {acquireLock, type LockInfo, lockHolder} from '../../src/util/lock.js'
import {REPO_ROOT, tempDir} from '../helpers.js'

const CHILD = join(REPO_ROOT, 'test', 'fixtures', 'lock-child.ts')
const options = {command: 'ups test', what: 'test thing', code: 'TEST_LOCKED'}
const exists = (p: string) => stat(p).then(() => true, () => false)

/** The pid of a process that has exited (and been reaped). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], {stdio: 'ignore'})
  await new Promise((r) => child.on('exit', r))
  return child.pid!
}

/** A live process that is not this one. */
function liveProcess(t: import('node:test').TestContext): ChildProcess {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], {stdio: 'ignore'})
  t.after(() => child.kill('SIGKILL'))
  return child
}

const lockOf = (pid: number, extra: Partial<LockInfo> = {}): string =>
  JSON.stringify({pid, hostname: hostname(), started_at: '2026-01-01T00:00:00.000Z', command: 'ups resume run_x', ...extra})

/** Spawns the lock-child holding `path`; resolves once it says it holds it. */
async function holder(t: import('node:test').TestContext, path: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, 'hold', path], {cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit']})
  t.after(() => child.kill('SIGKILL'))
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d) => String(d).includes('locked') && resolve())
    child.on('exit', () => reject(new Error('the holder exited')))
  })
  return child
}

describe('lock files', () => {
  it('a held lock refuses with the holder, the lock file and the fix; exit code 1', async (t) => {
    const dir = await tempDir(t)
    const path = join(dir, 'x.lock')
    const live = liveProcess(t)
    await writeFile(path, lockOf(live.pid!))
    await assert.rejects(acquireLock(path, options), (e: UserError) => {
      assert.equal(e.code, 'TEST_LOCKED')
      assert.equal(e.exitCode, 1)
      assert.match(e.message, new RegExp(`The test thing is in use by pid ${live.pid} on ${hostname()} \\(\`ups resume run_x\`, since 2026-01-01T00:00:00.000Z\\)\\. Lock file: ${path.replace(/[.]/g, '\\.')}\\.`))
      assert.match(e.hint!, /Wait for that process to finish.*reclaimed automatically.*delete .*x\.lock/)
      return true
    })
    assert.equal(JSON.parse(await readFile(path, 'utf8')).pid, live.pid, 'a held lock is left alone')
  })

  it('a lock whose pid is dead is reclaimed and says so; release removes it', async (t) => {
    const dir = await tempDir(t)
    const path = join(dir, 'x.lock')
    const pid = await deadPid()
    await writeFile(path, lockOf(pid))
    const told: string[] = []
    const lock = await acquireLock(path, {...options, onReclaim: (prev, reason) => told.push(`${prev?.pid}: ${reason}`)})
    assert.deepEqual(told, [`${pid}: pid ${pid} is no longer running`])
    assert.match(lock.reclaimed!, new RegExp(`pid ${pid} .*no longer running`))
    const info = JSON.parse(await readFile(path, 'utf8'))
    assert.equal(info.pid, process.pid)
    assert.equal(info.command, 'ups test')
    assert.equal(info.hostname, hostname())
    assert.ok(!Number.isNaN(Date.parse(info.started_at)))
    assert.ok(!(await exists(`${path}.reclaim`)))
    await lock.release()
    assert.ok(!(await exists(path)))
  })

  it('another host: held while its heartbeat is fresh, reclaimed once it is older than the TTL', async (t) => {
    const dir = await tempDir(t)
    const path = join(dir, 'x.lock')
    await writeFile(path, lockOf(1, {hostname: 'elsewhere'}))
    await assert.rejects(acquireLock(path, options), /in use by pid 1 on elsewhere/)
    const old = new Date(Date.now() - 3600_000)
    await utimes(path, old, old)
    const lock = await acquireLock(path, options)
    assert.match(lock.reclaimed!, /holder on elsewhere has not refreshed it for 60 min/)
    await lock.release()
  })

  it('an empty lock file (writer died creating it) is held briefly, then reclaimed', async (t) => {
    const dir = await tempDir(t)
    const path = join(dir, 'x.lock')
    await writeFile(path, '')
    await assert.rejects(acquireLock(path, options), /in use by an unknown process/)
    const old = new Date(Date.now() - 60_000)
    await utimes(path, old, old)
    await (await acquireLock(path, options)).release()
  })

  it('waits for a holder within waitMs; nested takes share a reentrant lock', async (t) => {
    const dir = await tempDir(t)
    const path = join(dir, 'x.lock')
    const first = await acquireLock(path, options)
    setTimeout(() => void first.release(), 300)
    const second = await acquireLock(path, {...options, waitMs: 30_000, pollMs: 20})
    assert.equal(second.first, true)
    const nested = await acquireLock(path, {...options, reentrant: true})
    assert.equal(nested.first, false)
    await nested.release()
    assert.ok(await exists(path), 'the outer hold keeps the lock')
    await second.release()
    assert.ok(!(await exists(path)))
  })

  it('release leaves alone a lock that another process has taken over', async (t) => {
    const dir = await tempDir(t)
    const path = join(dir, 'x.lock')
    const lock = await acquireLock(path, options)
    await writeFile(path, lockOf(4242))
    await lock.release()
    assert.equal(JSON.parse(await readFile(path, 'utf8')).pid, 4242)
  })

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal} releases the locks a process holds, and it still dies of the signal`, async (t) => {
      const dir = await tempDir(t)
      const path = join(dir, 'x.lock')
      const child = await holder(t, path)
      assert.equal(JSON.parse(await readFile(path, 'utf8')).pid, child.pid)
      const exited = new Promise<NodeJS.Signals | null>((r) => child.on('exit', (_code, sig) => r(sig)))
      child.kill(signal)
      assert.equal(await exited, signal)
      assert.ok(!(await exists(path)), 'the lock file is gone')
    })
  }

  it('kill -9 leaves the lock; the next taker reclaims it (its pid is dead)', async (t) => {
    const dir = await tempDir(t)
    const path = join(dir, 'x.lock')
    const child = await holder(t, path)
    const exited = new Promise((r) => child.on('exit', r))
    child.kill('SIGKILL')
    await exited
    assert.ok(await exists(path))
    const lock = await acquireLock(path, options)
    assert.match(lock.reclaimed!, new RegExp(`pid ${child.pid} .*no longer running`))
    await lock.release()
  })
  it('lockHolder names a live holder and counts a dead one\'s or a missing lock as free, touching nothing', async (t) => {
    const dir = await tempDir(t)
    const path = join(dir, 'x.lock')
    assert.equal(await lockHolder(path), null)
    const live = liveProcess(t)
    await writeFile(path, lockOf(live.pid!))
    assert.equal((await lockHolder(path))!.info!.pid, live.pid)
    await writeFile(path, lockOf(await deadPid()))
    assert.equal(await lockHolder(path), null)
    assert.ok(await exists(path), 'a stale lock is only judged, not removed')
  })
})

describe('removeStaleTempFiles', () => {
  it('removes atomic-write temp files of dead writers, recursively; keeps live writers\', checkpoint swap folders and other files', async (t) => {
    const dir = await tempDir(t)
    const dead = await deadPid()
    const live = liveProcess(t)
    await mkdir(join(dir, 'checkpoints', '.operator.ckpt.a1b2c3d4e5f6.tmp'), {recursive: true})
    await mkdir(join(dir, 'eval', 'small'), {recursive: true})
    const files = {
      [`.metadata.json.${dead}.0a1b2c3d.tmp`]: 'gone',
      [`checkpoints/.metadata.json.${dead}.deadbeef.tmp`]: 'gone',
      [`eval/small/.results.json.${dead}.12345678.tmp`]: 'gone',
      [`.summary.json.${live.pid}.0a1b2c3d.tmp`]: 'live writer',
      [`.summary.json.${process.pid}.0a1b2c3d.tmp`]: 'this process',
      'checkpoints/.operator.ckpt.a1b2c3d4e5f6.tmp/manifest.json': '{}',
      'notes.tmp': 'not ours',
      'history.jsonl': '',
    }
    for (const [rel, text] of Object.entries(files)) await writeFile(join(dir, rel), text)
    const removed = await removeStaleTempFiles(dir, (pid) => pid === live.pid)
    assert.deepEqual(removed.map((p) => p.slice(dir.length + 1)).sort(), Object.keys(files).filter((k) => files[k] === 'gone').sort())
    assert.deepEqual((await readdir(join(dir, 'checkpoints'))).sort(), ['.operator.ckpt.a1b2c3d4e5f6.tmp'])
    for (const rel of Object.keys(files).filter((k) => files[k] !== 'gone')) assert.ok(await exists(join(dir, rel)), rel)
  })
})
