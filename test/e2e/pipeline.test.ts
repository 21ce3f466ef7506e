import assert from 'node:assert/strict'
import {cp, readdir, readFile, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {REPO_ROOT, hasStackTrace, runCli, tempDir} from '../helpers.js'

/** A work folder with the repo's configs, so generated data and artefacts stay in the temp dir. */
async function workDir(t: import('node:test').TestContext): Promise<string> {
  const dir = await tempDir(t, 'ups-e2e-pipeline-')
  await cp(join(REPO_ROOT, 'configs'), join(dir, 'configs'), {recursive: true})
  return dir
}

describe('ups dry-run', () => {
  it('local_smoke --json: validates, generates the data, builds every model, times warm-up and timed steps per stage, writes estimate.json', {timeout: 180_000}, async (t) => {
    const dir = await workDir(t)
    const r = await runCli(['dry-run', 'configs/local_smoke.yaml', '--json'], {cwd: dir})
    assert.equal(r.code, 0, r.stderr)
    const out = JSON.parse(r.stdout)
    assert.deepEqual(out.steps.map((s: {step: string; status: string}) => `${s.step}:${s.status}`), ['validate:ok', 'data check:ok', 'build models:ok', 'measure steps:ok', 'estimate:ok', 'write estimate:ok'])
    const stages = ['autoencoder', 'operator', 'diff_residual', 'consistency_distill']
    assert.deepEqual(out.estimate.models.map((m: {stage: string}) => m.stage), stages)
    for (const m of out.estimate.models) assert.ok(m.params > 0 && m.memoryBytes > 4 * m.params, JSON.stringify(m))
    for (const s of out.estimate.measurements) {
      // At least two warm-up steps, then the timed ones; the step time is the timed steps' median.
      assert.ok(s.warmupSteps >= 2 && s.stepMs.length > s.warmupSteps, JSON.stringify(s))
      assert.ok(s.measuredMs > 0 && s.flopsPerStep > 0 && s.valBatchMs > 0)
    }
    assert.equal(out.estimate.data.source, 'data')
    assert.equal(out.estimate.data.trainSamples, 36)
    assert.equal(out.estimate.target.name, 'A100')
    assert.match(out.estimate.line, /^Estimated: [\d.]+ h, \$[\d.]+ on A100 \(\$1\.89\/hr\), tensorflow-gpu unmeasured$/)
    const written = JSON.parse(await readFile(join(dir, 'artifacts', 'estimate.json'), 'utf8'))
    assert.equal(written.totalSeconds, out.estimate.totalSeconds)
    await stat(join(dir, 'artifacts', 'data', 'local_smoke', 'burgers1d_train.h5'))
  })

  it('--estimate-only --static prints only the estimate line, with no data scan and no timing', async (t) => {
    const dir = await workDir(t)
    const r = await runCli(['dry-run', 'configs/train_burgers_32dim.yaml', '--estimate-only', '--static', '--gpu', 'RTX_4090', '--out', 'est'], {cwd: dir})
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /^Estimated: [\d.]+ h, \$[\d.]+ on RTX_4090 \(\$0\.40\/hr\), tensorflow-gpu unmeasured\nTarget backend: tensorflow-gpu \(image .*CUDA 11.*\)\. Step model: unmeasured: .*\nPrice: table \(2025-10-16\)\. Written to est\/estimate\.json\n$/)
    const est = JSON.parse(await readFile(join(dir, 'est', 'estimate.json'), 'utf8'))
    assert.equal(est.method, 'static')
    assert.deepEqual(est.measurements, [])
    // The release's 10000 x 201 x 1024 Burgers data: more than the memory budget, streamed; the
    // cache size and free disk are reported before anything starts.
    assert.equal(est.resources.streamed, true)
    assert.ok(est.resources.latentCache.bytes > 0)
    assert.ok(est.resources.disk.every((d: {freeBytes: number | null}) => d.freeBytes !== null && d.freeBytes > 0))
    assert.ok(est.notes.some((n: string) => /^warning: the data takes [\d.]+ GB in memory, more than data\.memory_budget_mb/.test(n)), est.notes.join('\n'))
  })

  it('a broken config exits 1 naming the failed step, without a stack trace', async (t) => {
    const dir = await workDir(t)
    await writeFile(join(dir, 'broken.yaml'), 'include: configs/local_smoke.yaml\noperator:\n  pdet: {group_size: 7}\n')
    const r = await runCli(['dry-run', 'broken.yaml'], {cwd: dir})
    assert.equal(r.code, 1)
    assert.match(r.stderr, /Error: Dry run failed at validate: .*arch\.group_size_divides_hidden/)
    assert.ok(!hasStackTrace(r.stderr))
    const j = await runCli(['dry-run', 'broken.yaml', '--json'], {cwd: dir})
    assert.equal(j.code, 1)
    assert.equal(JSON.parse(j.stdout).error.code, 'PIPELINE_DRY_RUN_FAILED')
  })
})

describe('ups run / ups resume', () => {
  it('the README main job runs end to end from no data, and resume redoes only what is asked', {timeout: 400_000}, async (t) => {
    const dir = await workDir(t)
    const r = await runCli(['run', '--train-config', 'configs/local_smoke.yaml'], {cwd: dir})
    assert.equal(r.code, 0, r.stdout + r.stderr)
    assert.match(r.stdout + r.stderr, /Training started/)
    assert.match(r.stdout, /Training pipeline completed successfully\s*$/)
    const runs = await readdir(join(dir, 'artifacts', 'runs'))
    assert.equal(runs.length, 1)
    const run = join(dir, 'artifacts', 'runs', runs[0])
    await stat(join(dir, 'artifacts', 'data', 'local_smoke', 'burgers1d_train.h5'))
    for (const stage of ['autoencoder', 'operator', 'diff_residual', 'consistency_distill']) await stat(join(run, 'checkpoints', `${stage}_best.ckpt`, 'weights.bin'))
    const results = JSON.parse(await readFile(join(run, 'eval', 'small', 'results.json'), 'utf8'))
    const numbers = Object.values(results.summary as Record<string, number>)
    assert.ok(numbers.length > 10 && numbers.every((v) => Number.isFinite(v)), 'every eval metric is a finite number')
    assert.ok(results.baselines.persistence && results.ratios.persistence.oneStep > 0)
    assert.deepEqual(results.corrector, {used: true, kind: 'distilled one-step student', noise: 'mean'})
    const plots = await readdir(join(run, 'eval', 'small', 'plots'))
    assert.ok(plots.some((f) => f.endsWith('.svg')) && plots.some((f) => f.endsWith('.png')), plots.join(', '))
    assert.match(await readFile(join(dir, 'artifacts', 'leaderboard.csv'), 'utf8'), new RegExp(runs[0]))
    await stat(join(dir, 'artifacts', 'leaderboard.html'))
    assert.match(r.stdout + r.stderr, new RegExp(`Report: .*${runs[0]}/reports/summary\\.md`))
    const meta = JSON.parse(await readFile(join(run, 'metadata.json'), 'utf8'))
    assert.ok(meta.trained && meta.last_small_eval && meta.last_full_eval, JSON.stringify(meta))

    const again = await runCli(['resume', runs[0], '--redo-full-eval', '--json'], {cwd: dir})
    assert.equal(again.code, 0, again.stdout + again.stderr)
    assert.ok(!/Training started/.test(again.stderr), 'resume re-evaluates without training again')
    const after = JSON.parse(await readFile(join(run, 'metadata.json'), 'utf8'))
    assert.equal(after.trained_at, meta.trained_at)
    assert.equal(after.last_small_eval_at, meta.last_small_eval_at, 'the small eval is reused')
    assert.notEqual(after.last_full_eval_at, meta.last_full_eval_at, 'the full eval ran again')
  })

  it('resume of an unknown run is a usage error (exit 2)', async (t) => {
    const dir = await workDir(t)
    const r = await runCli(['resume', 'run_20990101_000000_0000'], {cwd: dir})
    assert.equal(r.code, 2)
    assert.match(r.stderr, /No run "run_20990101_000000_0000"/)
  })

  it('a bad --gate-ratio is a usage error (exit 2)', async (t) => {
    const dir = await workDir(t)
    const r = await runCli(['run', '--train-config', 'configs/local_smoke.yaml', '--gate-ratio', 'nrmse'], {cwd: dir})
    assert.equal(r.code, 2)
    assert.match(r.stderr, /--gate-ratio "nrmse" is not KEY=FACTOR/)
  })
})
