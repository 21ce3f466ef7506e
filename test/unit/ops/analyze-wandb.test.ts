import assert from 'node:assert/strict'
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {test} from 'node:test'

import {analyzeRun} from '../../../src/ops/analyze.js'
import {startMockWandb} from '../../fixtures/mock-wandb.js'
import {tempDir} from '../../helpers.js'
import {RUN_CONFIG, RUN_ID, START, recordedHistory, writeRecordedRun} from './run-fixture.js'

test('analyze --source wandb reads history, summary and config back from W&B', async (t) => {
  const mock = await startMockWandb()
  t.after(() => mock.close())
  const root = await tempDir(t, 'ups-analyze-wandb-')
  // The run as the mirror would have uploaded it (W&B rows: metrics + _step), with upstream eval summary keys.
  mock.runs.set(`${mock.entity}/ups-test/${RUN_ID}`, {
    entity: mock.entity, project: 'ups-test', name: RUN_ID, config: {...RUN_CONFIG}, upserts: 1, state: 'finished',
    history: recordedHistory().map((r) => ({...r.metrics, _step: r.step, _timestamp: Date.parse(r.time) / 1000})),
    offsetErrors: [], summary: {'eval/baseline_nrmse': 0.1, 'eval/ttc_nrmse': 0.095, _runtime: 3600}, files: {}, uploaded: [], completions: 1,
  })
  const deps = {
    now: () => new Date(START + 86400_000),
    wandb: {env: {WANDB_API_KEY: mock.apiKey, WANDB_BASE_URL: mock.url}, fetch: globalThis.fetch, now: () => new Date(START), sleep: async () => {}},
  }
  const r = await analyzeRun({run: `${mock.entity}/ups-test/${RUN_ID}`, runsRoot: join(root, 'runs'), source: 'wandb', output: join(root, 'w.md'), plots: false, leaderboard: join(root, 'none.csv')}, deps)
  assert.equal(r.source, 'wandb')
  assert.equal(r.header.state, 'finished')
  assert.equal(r.header.durationSec, 3600)
  assert.deepEqual(r.stages.map((s) => s.stage), ['operator', 'diff_residual'])
  assert.equal(r.stages[0].loss!.initial, 1)
  assert.equal(r.stages[0].gradNorm!.max, 3.5)
  assert.equal(r.stages[1].loss!.nonFinite, 1)
  assert.equal(r.evaluation.results[0].source, 'summary')
  assert.ok(Math.abs(r.evaluation.ttcImprovementPct! - 5) < 1e-9)
  assert.ok(r.recommendations.some((x) => x.rule === 'ttc-low'))
  assert.match(await readFile(r.reportPath, 'utf8'), /W&B mock-entity\/ups-test\/run_20250301_100000_ab12/)

  // A local run id finds its W&B identity through the run's config (logging.wandb).
  await writeRecordedRun(join(root, 'runs'))
  const viaLocal = await analyzeRun({run: RUN_ID, runsRoot: join(root, 'runs'), source: 'wandb', output: join(root, 'w2.md'), plots: false}, deps)
  assert.equal(viaLocal.header.historyRows, recordedHistory().length)
  assert.deepEqual(viaLocal.evaluation.results.map((x) => x.source).sort(), ['eval/full/results.json', 'eval/small/results.json', 'summary'])

  await assert.rejects(
    analyzeRun({run: `${mock.entity}/ups-test/run_missing`, runsRoot: root, source: 'wandb', output: join(root, 'x.md')}, deps),
    (e: Error & {code?: string}) => e.code === 'WANDB_RUN_NOT_FOUND',
  )
  await assert.rejects(
    analyzeRun({run: 'run_unknown', runsRoot: root, source: 'wandb', output: join(root, 'x.md')}, deps),
    (e: Error & {code?: string; exitCode?: number}) => e.code === 'ANALYZE_WANDB_TARGET' && e.exitCode === 2,
  )
})
