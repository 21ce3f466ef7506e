import assert from 'node:assert/strict'
import {readFile, readdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, it, type TestContext} from 'node:test'

import {readLeaderboard} from '../../../src/pipeline/leaderboard.js'
import {resumePipeline, runPipeline} from '../../../src/pipeline/run.js'
import {tempDir} from '../../helpers.js'
import {doneCount, fakeSteps, type FakeOptions, pipelineDeps, readLog, RUN_ID, runOptions, startCount, TINY_CONFIG} from './fake-steps.js'

async function setup(t: TestContext, fake: Partial<FakeOptions> = {}) {
  const dir = await tempDir(t, 'ups-pipeline-')
  await writeFile(join(dir, 'train.yaml'), TINY_CONFIG)
  const log = join(dir, 'exec.log')
  const steps = fakeSteps({log, ...fake})
  const run = (over: Parameters<typeof runOptions>[1] = {}, s = steps) => runPipeline(runOptions(dir, over), pipelineDeps(dir, s))
  const events = () => readLog(log)
  const metadata = async () => JSON.parse(await readFile(join(dir, 'runs', RUN_ID, 'metadata.json'), 'utf8'))
  return {dir, log, steps, run, events, metadata}
}

describe('ups run orchestrator', () => {
  it('a fresh run does every step once, records metadata, leaderboard, report', async (t) => {
    const {dir, run, events, metadata} = await setup(t)
    const r = await run({tags: {sweep: 'lr'}, notes: 'first'})
    assert.equal(r.ok, true, r.message)
    assert.equal(r.message, 'Training pipeline completed successfully')
    assert.equal(r.exitCode, 0)
    const ev = await events()
    for (const u of ['validate', 'data_check', 'estimate', 'train:autoencoder', 'train:operator', 'eval:small', 'eval:full']) assert.equal(doneCount(ev, u), 1, u)
    const m = await metadata()
    assert.equal(m.schema_version, 1)
    assert.match(m.config_hash, /^[0-9a-f]{16}$/)
    assert.equal(m.trained, true)
    assert.ok(m.trained_at && m.last_small_eval_at && m.last_full_eval_at)
    assert.deepEqual(m.last_small_eval.metrics, {nrmse: 0.2, mse: 0.01})
    assert.deepEqual(m.arch.stages, ['autoencoder', 'operator'])
    assert.equal(m.status, 'finished')
    assert.deepEqual(m.tags, {sweep: 'lr'})
    const board = await readLeaderboard(join(dir, 'leaderboard.csv'))
    assert.equal(board.rows.length, 1)
    assert.equal(board.rows[0].label, 'champion') // no baseline yet: the gate accepts it
    assert.equal(board.rows[0]['full.nrmse'], '0.18')
    assert.equal(board.rows[0].tags, 'sweep=lr')
    const html = await readFile(join(dir, 'leaderboard.html'), 'utf8')
    assert.match(html, /<tr class="champion">/)
    const report = await readFile(r.reportPath!, 'utf8')
    assert.match(report, /# Run run_20251016_120000_abcd/)
    assert.match(report, /Estimated: 0\.010 h/)
    assert.ok((await readdir(join(dir, 'runs', RUN_ID))).includes('estimate.json'))
  })

  it('rerunning a finished run redoes nothing; --skip-training reuses checkpoints and cached metrics', async (t) => {
    const {run, events} = await setup(t)
    assert.equal((await run()).ok, true)
    const before = (await events()).length
    const again = await run()
    assert.equal(again.ok, true, again.message)
    const skipTrain = await run({skipTraining: true})
    assert.equal(skipTrain.ok, true, skipTrain.message)
    assert.equal(skipTrain.steps.train?.status, 'skipped')
    assert.equal((await events()).length, before, 'no fake step ran again')
  })

  it('--redo-small-eval and --redo-full-eval rerun only that evaluation, even with --skip-training', async (t) => {
    const {run, events} = await setup(t)
    await run()
    assert.equal((await run({skipTraining: true, redoSmallEval: true})).ok, true)
    let ev = await events()
    assert.equal(doneCount(ev, 'eval:small'), 2)
    assert.equal(doneCount(ev, 'eval:full'), 1)
    assert.equal(doneCount(ev, 'train:operator'), 1)
    assert.equal((await run({redoFullEval: true})).ok, true)
    ev = await events()
    assert.equal(doneCount(ev, 'eval:small'), 2)
    assert.equal(doneCount(ev, 'eval:full'), 2)
    assert.equal(doneCount(ev, 'train:operator'), 1)
  })

  it('--force-train trains every stage again and redoes both evaluations', async (t) => {
    const {dir, run, events, metadata} = await setup(t)
    await run()
    const r = await run({forceTrain: true})
    assert.equal(r.ok, true, r.message)
    const ev = await events()
    for (const u of ['train:autoencoder', 'train:operator', 'eval:small', 'eval:full', 'validate']) assert.equal(doneCount(ev, u), 2, u)
    assert.equal((await metadata()).options.forceTrain, false, 'the one-shot flag is consumed')
    const names = await readdir(join(dir, 'runs', RUN_ID))
    assert.ok(names.some((n) => n.startsWith('checkpoints.replaced-')), 'old checkpoints moved aside, not deleted')
  })

  it('a changed config refuses to reuse checkpoints unless --force-train', async (t) => {
    const {run, events} = await setup(t)
    await run()
    const before = (await events()).length
    const refused = await run({overrides: ['stages.operator.epochs=3'], skipTraining: true})
    assert.equal(refused.ok, false)
    assert.equal(refused.failedStep, 'train')
    assert.match(refused.message, /^Training pipeline failed: train: the config hash is [0-9a-f]+ but run .* was trained with [0-9a-f]+; refusing to reuse its checkpoints \(pass --force-train/)
    assert.equal(refused.exitCode, 1)
    assert.equal((await run({overrides: ['stages.operator.epochs=3']})).ok, false)
    assert.equal((await events()).length, before, 'nothing ran')
    const forced = await run({overrides: ['stages.operator.epochs=3'], forceTrain: true})
    assert.equal(forced.ok, true, forced.message)
    assert.equal(doneCount(await events(), 'train:operator'), 2)
  })

  it('--skip-training on a run with nothing trained fails at train', async (t) => {
    const {run} = await setup(t)
    const r = await run({skipTraining: true})
    assert.equal(r.failedStep, 'train')
    assert.match(r.message, /no checkpoints to reuse/)
  })

  it('skip flags skip their steps and record them as skipped', async (t) => {
    const {run, events, metadata} = await setup(t)
    const r = await run({skipValidation: true, skipDataCheck: true, skipDryRun: true, skipFullEval: true})
    assert.equal(r.ok, true, r.message)
    const ev = await events()
    assert.equal(startCount(ev, 'validate') + startCount(ev, 'data_check') + startCount(ev, 'estimate') + startCount(ev, 'eval:full'), 0)
    const m = await metadata()
    for (const s of ['validate', 'data_check', 'dry_run', 'full_eval', 'full_gate']) assert.equal(m.steps[s].status, 'skipped', s)
    assert.equal(m.last_full_eval, null)
  })

  it('a failing step ends the run with "Training pipeline failed: <step>: <reason>"; resume continues after the fix', async (t) => {
    const {dir, log, run, events} = await setup(t, {fail: {'train:operator': 'loss is NaN'}})
    const r = await run()
    assert.equal(r.ok, false)
    assert.equal(r.message, 'Training pipeline failed: train: loss is NaN')
    const ev = await events()
    assert.equal(startCount(ev, 'eval:small'), 0)
    assert.equal(doneCount(ev, 'train:autoencoder'), 1)
    const fixed = fakeSteps({log})
    const resumed = await resumePipeline(RUN_ID, {}, pipelineDeps(dir, fixed))
    assert.equal(resumed.ok, true, resumed.message)
    const after = await events()
    for (const u of ['validate', 'data_check', 'estimate', 'train:autoencoder']) assert.equal(doneCount(after, u), 1, `${u} not redone`)
    assert.equal(doneCount(after, 'train:operator'), 1)
  })

  it('a failed validation stops before anything else', async (t) => {
    const {run, events} = await setup(t, {invalid: ['arch.group_size_divides_hidden: 16 / 6']})
    const r = await run()
    assert.match(r.message, /^Training pipeline failed: validate: 1 check\(s\) failed: arch.group_size_divides_hidden/)
    assert.equal(startCount(await events(), 'data_check'), 0)
  })

  it('an unreadable train config fails at validate without a run directory', async (t) => {
    const {dir, run} = await setup(t)
    const r = await run({trainConfig: join(dir, 'missing.yaml')})
    assert.equal(r.failedStep, 'validate')
    assert.equal(r.runDir, null)
  })

  it('resume of an unknown run is a usage error', async (t) => {
    const {dir, steps} = await setup(t)
    await assert.rejects(resumePipeline('run_nope', {}, pipelineDeps(dir, steps)), (e: Error & {code?: string}) => e.code === 'RUNDIR_NOT_FOUND')
  })
})

describe('crash right after a commit', () => {
  it('resume adopts a committed evaluation and committed checkpoints instead of redoing them', async (t) => {
    const {dir, log} = await setup(t)
    const crashing = fakeSteps({log, crashAfterCommit: ['eval:small']})
    const r = await runPipeline(runOptions(dir), pipelineDeps(dir, crashing))
    assert.equal(r.failedStep, 'small_eval')
    const resumed = await resumePipeline(RUN_ID, {}, pipelineDeps(dir, fakeSteps({log})))
    assert.equal(resumed.ok, true, resumed.message)
    const ev = await readLog(log)
    assert.equal(startCount(ev, 'eval:small'), 1, 'the committed small evaluation was adopted')
    assert.match(resumed.steps.small_eval!.detail, /adopted finished results/)
    const results = JSON.parse(await readFile(join(dir, 'runs', RUN_ID, 'eval', 'small', 'results.json'), 'utf8'))
    assert.equal(results.execs.length, 1)
  })

  it('a training stage committed before the crash is not trained again', async (t) => {
    const {dir, log} = await setup(t)
    const r = await runPipeline(runOptions(dir), pipelineDeps(dir, fakeSteps({log, crashAfterCommit: ['train:autoencoder']})))
    assert.equal(r.failedStep, 'train')
    const resumed = await resumePipeline(RUN_ID, {}, pipelineDeps(dir, fakeSteps({log})))
    assert.equal(resumed.ok, true, resumed.message)
    const ev = await readLog(log)
    assert.equal(startCount(ev, 'train:autoencoder'), 1)
    assert.equal(doneCount(ev, 'train:operator'), 1)
  })

  it('a redo interrupted after clearing is not lost: resume still redoes the evaluation once', async (t) => {
    const {dir, log, run} = await setup(t)
    await run()
    const r = await run({redoFullEval: true}, fakeSteps({log, fail: {'eval:full': 'killed'}}))
    assert.equal(r.failedStep, 'full_eval')
    const resumed = await resumePipeline(RUN_ID, {}, pipelineDeps(dir, fakeSteps({log})))
    assert.equal(resumed.ok, true, resumed.message)
    assert.equal(doneCount(await readLog(log), 'eval:full'), 2)
  })
})
