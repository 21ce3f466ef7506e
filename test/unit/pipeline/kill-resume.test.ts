/**
 * The crash test: `ups run` (the orchestrator with fake steps, in a child process) is killed
 * with SIGKILL at 10 seeded moments; `resume` must then finish every time, with no unit of work
 * done twice and the same leaderboard row as an uninterrupted run.
 */
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {readFile, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {it} from 'node:test'

import {resumePipeline, runPipeline} from '../../../src/pipeline/run.js'
import {REPO_ROOT, tempDir} from '../../helpers.js'
import {doneCount, fakeSteps, pipelineDeps, readLog, RUN_ID, runOptions, TINY_CONFIG} from './fake-steps.js'

const DELAY_MS = 60
const CHILD = join(REPO_ROOT, 'test', 'fixtures', 'pipeline-child.ts')
/** Units that commit files (checkpoints, results.json): exactly once, always. */
const COMMITTING = ['train:autoencoder', 'train:operator', 'eval:small', 'eval:full']
/** Read-only checks: rerun only when the kill fell between their end and their record. */
const CHECKS: Record<string, string> = {validate: 'validate', data_check: 'data_check', estimate: 'dry_run'}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const exists = (p: string) => stat(p).then(() => true, () => false)

/** Starts the child, waits for `events` log lines (0: for the run directory) plus `extraMs`, kills it. */
async function runAndKill(dir: string, events: number, extraMs: number): Promise<'killed' | 'finished'> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dir, String(DELAY_MS)], {cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe']})
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
  let done = false
  void exited.then(() => (done = true))
  const log = join(dir, 'exec.log')
  const ready = async () => (events === 0 ? exists(join(dir, 'runs', RUN_ID, 'metadata.json')) : (await readLog(log)).length >= events)
  while (!done && !(await ready())) await sleep(3)
  if (done) {
    const code = await exited
    assert.equal(code, 0, `the child failed on its own: ${stderr}`)
    return 'finished'
  }
  await sleep(extraMs)
  child.kill('SIGKILL')
  await exited
  return done && child.signalCode !== 'SIGKILL' ? 'finished' : 'killed'
}

it('SIGKILL at 10 seeded moments: resume completes, no work done twice, same leaderboard row', {timeout: 240_000}, async (t) => {
  // The uninterrupted reference run.
  const ref = await tempDir(t, 'ups-kill-ref-')
  await writeFile(join(ref, 'train.yaml'), TINY_CONFIG)
  const r = await runPipeline(runOptions(ref), pipelineDeps(ref, fakeSteps({log: join(ref, 'exec.log')})))
  assert.equal(r.ok, true, r.message)
  const refCsv = await readFile(join(ref, 'leaderboard.csv'), 'utf8')
  const totalEvents = (await readLog(join(ref, 'exec.log'))).length
  assert.equal(totalEvents, 14)

  const rng = mulberry32(20251016)
  const outcomes: string[] = []
  for (let k = 0; k < 10; k++) {
    const dir = await tempDir(t, `ups-kill-${k}-`)
    await writeFile(join(dir, 'train.yaml'), TINY_CONFIG)
    const events = Math.floor(rng() * totalEvents)
    const extra = Math.floor(rng() * DELAY_MS * 1.5)
    const how = await runAndKill(dir, events, extra)
    outcomes.push(`${events}+${extra}ms:${how}`)
    // What was recorded at the moment of the kill decides which reruns are legitimate.
    const atKill = await readLog(join(dir, 'exec.log'))
    const metaAtKill = (await exists(join(dir, 'runs', RUN_ID, 'metadata.json')))
      ? JSON.parse(await readFile(join(dir, 'runs', RUN_ID, 'metadata.json'), 'utf8'))
      : {steps: {}}

    const resumed = (await exists(join(dir, 'runs', RUN_ID, 'metadata.json')))
      ? await resumePipeline(RUN_ID, {}, pipelineDeps(dir, fakeSteps({log: join(dir, 'exec.log')})))
      : await runPipeline(runOptions(dir), pipelineDeps(dir, fakeSteps({log: join(dir, 'exec.log')}))) // killed before the run directory existed
    assert.equal(resumed.ok, true, `kill ${k} (${outcomes[k]}): ${resumed.message}`)

    const ev = await readLog(join(dir, 'exec.log'))
    for (const unit of COMMITTING) {
      assert.ok(doneCount(ev, unit) <= 1, `kill ${k}: ${unit} done ${doneCount(ev, unit)} times`)
      const file = unit.startsWith('train:')
        ? join(dir, 'runs', RUN_ID, 'checkpoints', `${unit.slice(6)}.json`)
        : join(dir, 'runs', RUN_ID, 'eval', unit.slice(5), 'results.json')
      const committed = JSON.parse(await readFile(file, 'utf8'))
      assert.equal(committed.execs.length, 1, `kill ${k}: ${unit} committed by ${committed.execs.join(', ')}`)
    }
    for (const [unit, step] of Object.entries(CHECKS)) {
      const allowance = doneCount(atKill, unit) > 0 && metaAtKill.steps?.[step]?.status !== 'done' ? 1 : 0
      assert.ok(doneCount(ev, unit) >= 1 && doneCount(ev, unit) <= 1 + allowance, `kill ${k}: ${unit} done ${doneCount(ev, unit)} times`)
    }
    assert.equal(await readFile(join(dir, 'leaderboard.csv'), 'utf8'), refCsv, `kill ${k}: leaderboard differs`)
    const meta = JSON.parse(await readFile(join(dir, 'runs', RUN_ID, 'metadata.json'), 'utf8'))
    assert.equal(meta.status, 'finished')
    assert.equal(meta.trained, true)
  }
  t.diagnostic(`kill moments (log events + delay): ${outcomes.join(', ')}`)
  assert.ok(outcomes.filter((o) => o.endsWith('killed')).length >= 8, `most runs must really be killed: ${outcomes.join(', ')}`)
})
