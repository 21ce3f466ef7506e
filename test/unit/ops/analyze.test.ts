import assert from 'node:assert/strict'
import {readFile, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {test} from 'node:test'

import {analyzeRun, type AnalyzeResult} from '../../../src/ops/analyze.js'
import {convergenceVerdict, rateGradNorm} from '../../../src/ops/analyze-metrics.js'
import {tempDir} from '../../helpers.js'
import {LEADERBOARD, RUN_ID, START, launchLine, writeRecordedRun} from './run-fixture.js'

const now = () => new Date(START + 24 * 3600_000)

async function analyzeRecorded(t: import('node:test').TestContext, extra: {logs?: string; plots?: boolean} = {}): Promise<{root: string; result: AnalyzeResult; md: string}> {
  const root = await tempDir(t, 'ups-analyze-')
  await writeRecordedRun(join(root, 'runs'), {withLogs: extra.logs})
  await writeFile(join(root, 'leaderboard.csv'), LEADERBOARD)
  await writeFile(join(root, 'launches.jsonl'), launchLine({}) + '\n{"torn": \n')
  const result = await analyzeRun(
    {run: RUN_ID.slice(0, 16), runsRoot: join(root, 'runs'), source: 'local', output: join(root, 'reports', 'a.md'), leaderboard: join(root, 'leaderboard.csv'), launchRecords: join(root, 'launches.jsonl'), plots: extra.plots},
    {now},
  )
  return {root, result, md: await readFile(result.reportPath, 'utf8')}
}

test('convergence verdict and MON-001 grad-norm boundaries', () => {
  assert.equal(convergenceVerdict(90), 'excellent')
  assert.equal(convergenceVerdict(89.9), 'good')
  assert.equal(convergenceVerdict(50), 'good')
  assert.equal(convergenceVerdict(20), 'moderate')
  assert.equal(convergenceVerdict(19.9), 'poor')
  assert.equal(convergenceVerdict(null), 'poor')
  const op = (v: number) => rateGradNorm('operator', v)
  assert.deepEqual([op(0.0009), op(0.005), op(0.01), op(0.2), op(0.21), op(1.0), op(1.01), op(Number.NaN)], ['critical', 'warning', 'healthy', 'healthy', 'warning', 'warning', 'critical', 'critical'])
  const df = (v: number) => rateGradNorm('diffusion', v)
  assert.deepEqual([df(0.04), df(0.05), df(0.5), df(0.6), df(2.0), df(2.01)], ['warning', 'healthy', 'healthy', 'warning', 'warning', 'critical'])
})

test('analyze a recorded run: every section, stats, ratings, eval, champion, cost, recommendations', async (t) => {
  const {result: r, md} = await analyzeRecorded(t)
  assert.equal(r.runId, RUN_ID)
  assert.equal(r.header.state, 'finished')
  assert.equal(r.header.config, 'configs/train_burgers_32dim.yaml')
  assert.equal(r.header.durationSec, 290 * 60)
  assert.deepEqual(r.stages.map((s) => s.stage), ['operator', 'diff_residual'])

  const op = r.stages[0]
  assert.equal(op.loss!.initial, 1)
  assert.ok(Math.abs(op.loss!.final - Math.pow(0.82, 19)) < 1e-12)
  assert.ok(Math.abs(op.loss!.reductionPct! - (1 - Math.pow(0.82, 19)) * 100) < 1e-9)
  assert.equal(op.loss!.verdict, 'excellent')
  assert.equal(op.loss!.stillImproving, true)
  assert.deepEqual(op.epochs, {recorded: 20, configured: 20})
  assert.equal(op.lr!.initial, 0.001)
  assert.equal(op.epochTimeSec!.max, 32)
  assert.equal(op.gradNorm!.kind, 'operator')
  assert.equal(op.gradNorm!.max, 3.5)
  assert.equal(op.gradNorm!.maxRating, 'critical')
  assert.equal(op.gradNorm!.rating, 'healthy')

  const diff = r.stages[1]
  assert.equal(diff.loss!.nonFinite, 1)
  assert.equal(diff.loss!.firstNonFiniteStep, 250)
  assert.equal(diff.loss!.verdict, 'poor')
  assert.equal(diff.gradNorm!.kind, 'diffusion')
  assert.equal(diff.gradNorm!.nonFinite, 1)
  assert.equal(diff.gradNorm!.maxRating, 'critical')

  // Evaluation: both files, baselines, champion (0.07, another run) beats this run's full nrmse 0.09.
  assert.deepEqual(r.evaluation.results.map((x) => x.source).sort(), ['eval/full/results.json', 'eval/small/results.json'])
  const vsPersistence = r.evaluation.comparisons.find((c) => c.baseline === 'persistence' && c.metric === 'nrmse')!
  assert.equal(vsPersistence.better, true)
  assert.ok(Math.abs(vsPersistence.improvementPct! - (0.3 - 0.08) / 0.3 * 100) < 1e-9)
  assert.equal(r.evaluation.comparisons.find((c) => c.baseline === 'linear')!.better, false)
  assert.equal(r.evaluation.champion!.champion.run_id, 'run_20250215_000000_0002')
  assert.equal(r.evaluation.champion!.champion.label, 'champion, v2')
  assert.equal(r.evaluation.champion!.value, 0.09)
  assert.equal(r.evaluation.champion!.beatsChampion, false)

  // Cost: $0.40/h from launch to finished_at (290 min) against a $1.60 estimate.
  assert.ok(Math.abs(r.cost.usd! - 0.4 * 290 / 60) < 1e-9)
  assert.ok(Math.abs(r.cost.vsEstimatePct! - (0.4 * 290 / 60 / 1.6) * 100) < 1e-9)
  assert.equal(r.cost.rating, 'warning')
  assert.ok(r.warnings.some((w) => /1 unreadable line/.test(w)))
  assert.equal(r.hardware.metrics['system/gpu.0.gpu'].max, 85)
  assert.equal(r.hardware.throughput.operator, 400)

  const rules = r.recommendations.map((x) => `${x.rule}:${x.stage ?? ''}`)
  for (const rule of ['nan-lower-lr:diff_residual', 'grad-clip:operator', 'train-longer:operator', 'diffusion-loss-high:diff_residual', 'worse-than-baseline:', 'behind-champion:', 'cost-over-estimate:']) {
    assert.ok(rules.includes(rule), `missing ${rule} in ${rules.join(', ')}`)
  }
  assert.ok(!rules.includes('train-longer:diff_residual') && !rules.includes('grad-clip:diff_residual'), rules.join(', '))
  assert.match(r.recommendations.find((x) => x.rule === 'nan-lower-lr')!.message, /5\.00e-5 -> 2\.50e-5/)
  assert.equal(r.recommendations[0].severity, 'critical')

  for (const heading of ['# Run analysis', '## Training loss', '## Learning rate', '## Epochs and epoch time', '## Gradient norms', '## Evaluation', '### Versus baselines', '### Versus the leaderboard champion', '## Hardware', '## Cost', '## Recommendations', '## Plots']) {
    assert.ok(md.includes(heading), `report lacks ${heading}`)
  }
  assert.match(md, /\| operator \| 1 \| .* \| excellent \|/)
  assert.match(md, /Critical/)

  // Plots: loss per stage, grad norm, lr; SVG and PNG each, next to the report.
  assert.deepEqual(r.plots.map((p) => p.name), ['loss_operator', 'loss_diff_residual', 'grad_norm', 'lr'])
  for (const p of r.plots) {
    assert.match(await readFile(p.svg, 'utf8'), /^<svg[^>]*>[\s\S]*<\/svg>$/)
    const png = await readFile(p.png)
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
    assert.ok((await stat(p.png)).size > 2000)
    assert.ok(md.includes(`](a_${p.name}.png)`))
  }
  assert.match(await readFile(r.plots[0].svg, 'utf8'), /operator loss/)
})

test('analyze reads OOM from the run logs and recommends a smaller batch', async (t) => {
  const {result} = await analyzeRecorded(t, {plots: false, logs: 'epoch 3\nRuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB\n'})
  assert.equal(result.failure?.cause, 'oom')
  const rec = result.recommendations.find((x) => x.rule === 'oom-smaller-batch')
  assert.match(rec!.message, /training\.batch_size 12 -> 6/)
})

test('analyze tolerates a bare run: no history, no eval, no leaderboard, no launch records', async (t) => {
  const root = await tempDir(t, 'ups-analyze-')
  const {createRunDir} = await import('../../../src/tracking/rundir.js')
  const dir = await createRunDir(join(root, 'runs'), 'run_20250302_000000_0000')
  const r = await analyzeRun({run: dir.path, runsRoot: join(root, 'runs'), source: 'local', output: join(root, 'r.md'), leaderboard: join(root, 'none.csv'), launchRecords: join(root, 'none.jsonl')}, {now})
  assert.deepEqual(r.stages, [])
  assert.deepEqual(r.plots, [])
  assert.equal(r.cost.usd, null)
  assert.match(r.evaluation.championNote!, /no leaderboard/)
  const md = await readFile(r.reportPath, 'utf8')
  assert.match(md, /\*No loss logged\.\*/)
  assert.match(md, /No issues found/)
})

test('analyze: unknown run is a usage error', async (t) => {
  const root = await tempDir(t, 'ups-analyze-')
  await assert.rejects(
    analyzeRun({run: 'run_nope', runsRoot: root, source: 'local', output: join(root, 'r.md')}, {now}),
    (e: Error & {code?: string; exitCode?: number}) => e.code === 'RUNDIR_NOT_FOUND' && e.exitCode === 2,
  )
})
