/**
 * One writer per run directory: a resume of a run that another process is still running is
 * refused before it writes anything; once that process is gone (kill -9), resume reclaims its lock.
 */
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {readFile, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {it} from 'node:test'

import {resumePipeline} from '../../../src/pipeline/run.js'
import {RUN_LOCK_FILE} from '../../../src/tracking/rundir-lock.js'
import type {UserError} from '../../../src/util/errors.js'
import {REPO_ROOT, tempDir} from '../../helpers.js'
import {doneCount, fakeSteps, pipelineDeps, readLog, RUN_ID, TINY_CONFIG} from './fake-steps.js'

const CHILD = join(REPO_ROOT, 'test', 'fixtures', 'pipeline-child.ts')
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const exists = (p: string) => stat(p).then(() => true, () => false)

async function startRun(dir: string, delayMs: number) {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dir, String(delayMs)], {cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe']})
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
  // Running, and inside the run directory's lock: its first unit of work has started.
  while (child.exitCode === null && (await readLog(join(dir, 'exec.log'))).length === 0) await sleep(5)
  return {child, exited, stderr: () => stderr}
}

it('resume while the run is running elsewhere: refused (RUNDIR_LOCKED, exit 1) with nothing done or written; the run finishes alone', {timeout: 120_000}, async (t) => {
  const dir = await tempDir(t, 'ups-run-lock-')
  await writeFile(join(dir, 'train.yaml'), TINY_CONFIG)
  const run = await startRun(dir, 400)
  const runDir = join(dir, 'runs', RUN_ID)

  await assert.rejects(resumePipeline(RUN_ID, {}, pipelineDeps(dir, fakeSteps({log: join(dir, 'exec.log')}))), (e: UserError) => {
    assert.equal(e.code, 'RUNDIR_LOCKED')
    assert.equal(e.exitCode, 1)
    assert.match(e.message, new RegExp(`run directory .*${RUN_ID} is in use by pid ${run.child.pid} .*\`ups run ${RUN_ID}\``))
    return true
  })
  const lock = JSON.parse(await readFile(join(runDir, RUN_LOCK_FILE), 'utf8'))
  assert.equal(lock.pid, run.child.pid)
  assert.equal(lock.command, `ups run ${RUN_ID}`)
  const mine = (await readLog(join(dir, 'exec.log'))).filter((e) => e.exec.startsWith(`${process.pid}-`))
  assert.deepEqual(mine, [], 'the refused resume ran no step')
  const metadataNow = JSON.parse(await readFile(join(runDir, 'metadata.json'), 'utf8'))
  assert.notEqual(metadataNow.status, 'failed', 'and recorded no failure in the run')
  assert.ok(!Object.values(metadataNow.steps as Record<string, {status: string}>).some((s) => s.status === 'failed'))

  assert.equal(await run.exited, 0, run.stderr())
  const ev = await readLog(join(dir, 'exec.log'))
  for (const unit of ['validate', 'data_check', 'estimate', 'train:autoencoder', 'train:operator', 'eval:small', 'eval:full']) assert.equal(doneCount(ev, unit), 1, unit)
  assert.equal(JSON.parse(await readFile(join(runDir, 'metadata.json'), 'utf8')).status, 'finished')
  assert.ok(!(await exists(join(runDir, RUN_LOCK_FILE))), 'the run released its lock')
})

it('a run killed with SIGKILL leaves its lock and temp files; resume reclaims the lock, removes them and finishes', {timeout: 120_000}, async (t) => {
  const dir = await tempDir(t, 'ups-run-lock-')
  await writeFile(join(dir, 'train.yaml'), TINY_CONFIG)
  const run = await startRun(dir, 400)
  run.child.kill('SIGKILL')
  await run.exited
  const runDir = join(dir, 'runs', RUN_ID)
  assert.ok(await exists(join(runDir, RUN_LOCK_FILE)))
  // What a kill -9 in the middle of writeFileAtomic leaves.
  const leftovers = [join(runDir, `.metadata.json.${run.child.pid}.0a1b2c3d.tmp`), join(runDir, 'checkpoints', `.metadata.json.${run.child.pid}.deadbeef.tmp`)]
  for (const p of leftovers) await writeFile(p, '{"torn')
  const lines: string[] = []
  const deps = {...pipelineDeps(dir, fakeSteps({log: join(dir, 'exec.log')})), onProgress: (l: string) => lines.push(l)}
  const r = await resumePipeline(RUN_ID, {}, deps)
  assert.equal(r.ok, true, r.message)
  assert.match(lines.join('\n'), new RegExp(`Reclaimed the lock of .*${RUN_ID} from pid ${run.child.pid} .*: pid ${run.child.pid} is no longer running`))
  for (const p of leftovers) {
    assert.ok(!(await exists(p)), p)
    assert.ok(lines.includes(`Removed a temp file left by a killed writer: ${p}`), lines.join('\n'))
  }
  assert.ok(!(await exists(join(runDir, RUN_LOCK_FILE))))
})
