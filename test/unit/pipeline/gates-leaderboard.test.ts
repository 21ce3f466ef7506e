import assert from 'node:assert/strict'
import {readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {evaluateGate, parseGateRatios} from '../../../src/pipeline/gates.js'
import {formatCsv, parseCsv, readLeaderboard, renderLeaderboardHtml, upsertRow} from '../../../src/pipeline/leaderboard.js'
import {runPipeline} from '../../../src/pipeline/run.js'
import {tempDir} from '../../helpers.js'
import {fakeSteps, pipelineDeps, readLog, runOptions, startCount, TINY_CONFIG} from './fake-steps.js'

const base = (runId: string, metrics: Record<string, number>, label = 'baseline') => ({runId, label, metrics})

describe('gates', () => {
  it('passes when the candidate beats the best baseline by the min delta (lower is better)', () => {
    const g = evaluateGate({nrmse: 0.08}, [base('a', {nrmse: 0.12}), base('b', {nrmse: 0.1})], {metric: 'nrmse', minDelta: 0.015, ratios: {}})
    assert.equal(g.passed, true)
    assert.equal(g.baseline?.runId, 'b')
    assert.ok(Math.abs(g.improvement! - 0.02) < 1e-12)
  })
  it('fails when the improvement is below the delta, naming the numbers', () => {
    const g = evaluateGate({nrmse: 0.095}, [base('b', {nrmse: 0.1})], {metric: 'nrmse', minDelta: 0.01, ratios: {}})
    assert.equal(g.passed, false)
    assert.match(g.reason, /nrmse 0\.095 vs baseline b 0\.1: improvement 0\.005 < required 0\.01/)
  })
  it('higher-is-better metrics flip the direction', () => {
    assert.equal(evaluateGate({r2: 0.9}, [base('b', {r2: 0.8})], {metric: 'r2', minDelta: 0.05, ratios: {}}).passed, true)
    assert.equal(evaluateGate({r2: 0.7}, [base('b', {r2: 0.8})], {metric: 'r2', minDelta: 0, ratios: {}}).passed, false)
  })
  it('ratio gates bound other metrics relative to the baseline', () => {
    const ratios = {conservation_gap: 1.1}
    const ok = evaluateGate({nrmse: 0.05, conservation_gap: 0.105}, [base('b', {nrmse: 0.1, conservation_gap: 0.1})], {metric: 'nrmse', minDelta: 0, ratios})
    assert.equal(ok.passed, true)
    const bad = evaluateGate({nrmse: 0.05, conservation_gap: 0.2}, [base('b', {nrmse: 0.1, conservation_gap: 0.1})], {metric: 'nrmse', minDelta: 0, ratios})
    assert.equal(bad.passed, false)
    assert.match(bad.reason, /conservation_gap 0\.2 \/ baseline 0\.1 = 2 > 1\.1/)
    const missing = evaluateGate({nrmse: 0.05}, [base('b', {nrmse: 0.1, conservation_gap: 0.1})], {metric: 'nrmse', minDelta: 0, ratios})
    assert.equal(missing.passed, false)
  })
  it('no baseline: accepted; no candidate metric: rejected', () => {
    assert.equal(evaluateGate({nrmse: 0.3}, [], {metric: 'nrmse', minDelta: 0.1, ratios: {}}).passed, true)
    assert.equal(evaluateGate({mse: 0.3}, [base('b', {nrmse: 0.1})], {metric: 'nrmse', minDelta: 0, ratios: {}}).passed, false)
  })
  it('parses KEY=FACTOR and rejects the rest with a usage error', () => {
    assert.deepEqual(parseGateRatios(['a=1.05', 'b.c=2']), {a: 1.05, 'b.c': 2})
    for (const bad of ['a', 'a=', 'a=-1', '=2', 'a=x']) assert.throws(() => parseGateRatios([bad]), (e: Error & {exitCode?: number}) => e.exitCode === 2, bad)
  })
})

describe('leaderboard', () => {
  it('CSV round-trips quotes, commas and newlines', () => {
    const board = upsertRow({columns: [], rows: []}, {run_id: 'r1', label: 'candidate', notes: 'a "quoted", multi\nline note', 'full.nrmse': '0.1'})
    const text = formatCsv(board)
    assert.deepEqual(parseCsv(text).rows, board.rows.map((r) => Object.fromEntries(board.columns.map((c) => [c, r[c] ?? '']))))
    assert.throws(() => parseCsv('run_id,notes\nr1,"open'), /never closed/)
  })
  it('upsert replaces a run\'s row and promoting a champion demotes the previous one', () => {
    let b = upsertRow({columns: [], rows: []}, {run_id: 'old', label: 'champion', 'full.nrmse': '0.2'})
    b = upsertRow(b, {run_id: 'new', label: 'candidate', 'full.nrmse': '0.3'})
    b = upsertRow(b, {run_id: 'new', label: 'champion', 'full.nrmse': '0.1'})
    assert.deepEqual(b.rows.map((r) => [r.run_id, r.label]), [['old', 'baseline'], ['new', 'champion']])
    assert.deepEqual(b.columns.slice(-1), ['full.nrmse'])
  })
  it('HTML is self-contained and escaped', () => {
    const html = renderLeaderboardHtml({columns: ['run_id', 'notes'], rows: [{run_id: 'r<1>', notes: '<script>x</script>'}]})
    assert.doesNotMatch(html, /<script>/)
    assert.match(html, /&lt;script&gt;/)
    assert.doesNotMatch(html, /(src|href)=/)
  })
})

describe('gates in the pipeline', () => {
  async function withBaseline(t: import('node:test').TestContext, baselineCsv: string) {
    const dir = await tempDir(t, 'ups-gates-')
    await writeFile(join(dir, 'train.yaml'), TINY_CONFIG)
    await writeFile(join(dir, 'leaderboard.csv'), baselineCsv)
    return dir
  }
  const CSV = 'run_id,label,small.nrmse,full.nrmse\nrun_base,champion,0.10,0.09\n'

  it('a small-gate failure skips the full eval, keeps the champion, exits 0 (1 with --strict-exit)', async (t) => {
    const dir = await withBaseline(t, CSV)
    const log = join(dir, 'exec.log')
    const steps = fakeSteps({log, metrics: {small: {nrmse: 0.12}, full: {nrmse: 0.11}}})
    const r = await runPipeline(runOptions(dir), pipelineDeps(dir, steps))
    assert.equal(r.ok, true)
    assert.equal(r.gates.small?.passed, false)
    assert.equal(r.steps.full_eval?.status, 'skipped')
    assert.equal(startCount(await readLog(log), 'eval:full'), 0)
    const board = await readLeaderboard(join(dir, 'leaderboard.csv'))
    assert.deepEqual(board.rows.map((x) => [x.run_id, x.label, x.small_gate]), [['run_base', 'champion', ''], [r.runId, 'candidate', 'failed']])
    const strict = await runPipeline(runOptions(dir, {strictExit: true}), pipelineDeps(dir, steps))
    assert.equal(strict.exitCode, 1)
    assert.match(strict.message, /^Training pipeline failed: small_gate: --strict-exit: nrmse 0\.12 vs baseline run_base 0\.1/)
  })

  it('passing both gates by the deltas promotes the run to champion and demotes the old one', async (t) => {
    const dir = await withBaseline(t, CSV)
    const steps = fakeSteps({log: join(dir, 'exec.log'), metrics: {small: {nrmse: 0.08}, full: {nrmse: 0.07}}})
    const r = await runPipeline(runOptions(dir, {minSmallDelta: 0.01, minFullDelta: 0.015}), pipelineDeps(dir, steps))
    assert.equal(r.ok, true, r.message)
    assert.equal(r.gates.full?.passed, true)
    const board = await readLeaderboard(join(dir, 'leaderboard.csv'))
    assert.deepEqual(board.rows.map((x) => [x.run_id, x.label]), [['run_base', 'baseline'], [r.runId, 'champion']])
    assert.match(await readFile(join(dir, 'leaderboard.html'), 'utf8'), /<tr class="champion">/)
  })

  it('a full-gate miss on the delta leaves the run a candidate', async (t) => {
    const dir = await withBaseline(t, CSV)
    const steps = fakeSteps({log: join(dir, 'exec.log'), metrics: {small: {nrmse: 0.08}, full: {nrmse: 0.085}}})
    const r = await runPipeline(runOptions(dir, {minFullDelta: 0.01}), pipelineDeps(dir, steps))
    assert.equal(r.gates.small?.passed, true)
    assert.equal(r.gates.full?.passed, false)
    assert.equal(r.leaderboardRow?.label, 'candidate')
  })
})
