import assert from 'node:assert/strict'
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {leaderboardSummary, publishLeaderboardRow} from '../../../src/pipeline/leaderboard-wandb.js'
import {startMockWandb} from '../../fixtures/mock-wandb.js'
import {tempDir} from '../../helpers.js'

const ROW = {run_id: 'run_20251016_000000_abcd', label: 'champion', config_hash: 'c0ffee', small_gate: 'passed', full_gate: 'passed', tags: 'team=a', notes: '', 'full.nrmse': '0.125'}
const depsFor = (env: Record<string, string | undefined>) => ({env, fetch: globalThis.fetch, now: () => new Date('2025-10-16T00:00:00Z'), sleep: async () => undefined})

describe('--leaderboard-wandb', () => {
  it('publishes the row as a job_type=leaderboard run in the given project/entity, with the CSV and HTML uploaded', async (t) => {
    const dir = await tempDir(t)
    const mock = await startMockWandb()
    t.after(() => mock.close())
    await writeFile(join(dir, 'leaderboard.csv'), 'run_id,label\nrun_20251016_000000_abcd,champion\n')
    await writeFile(join(dir, 'leaderboard.html'), '<table></table>')
    const r = await publishLeaderboardRow(ROW, [join(dir, 'leaderboard.csv'), join(dir, 'leaderboard.html'), join(dir, 'absent.html')], {project: 'ups-board', entity: 'team-x'}, depsFor({WANDB_API_KEY: mock.apiKey, WANDB_BASE_URL: mock.url}))
    assert.equal(r.sent, true, r.detail)
    const run = mock.run('ups-board', r.name!, 'team-x')
    assert.ok(run, `run ${r.name} in team-x/ups-board: ${[...mock.runs.keys()].join(', ')}`)
    assert.equal(run.jobType, 'leaderboard')
    assert.deepEqual(run.summary, {run_id: ROW.run_id, label: 'champion', config_hash: 'c0ffee', small_gate: 'passed', full_gate: 'passed', tags: 'team=a', 'full.nrmse': 0.125, champion: true})
    assert.deepEqual(Object.keys(run.files).sort(), ['leaderboard.csv', 'leaderboard.html'])
    assert.match(run.files['leaderboard.csv'].content.toString(), /champion/)
    assert.equal(run.state, 'finished')
    assert.match(r.detail, /team-x\/ups-board/)
  })

  it('sends nothing without a key, offline, or without a project; a server failure is reported, not thrown', async (t) => {
    const mock = await startMockWandb({faults: {failEvery: 1}})
    t.after(() => mock.close())
    for (const [env, target, why] of [
      [{WANDB_BASE_URL: mock.url}, {project: 'p'}, /WANDB_API_KEY is not set/],
      [{WANDB_API_KEY: mock.apiKey, WANDB_BASE_URL: mock.url, WANDB_MODE: 'offline'}, {project: 'p'}, /WANDB_MODE=offline/],
      [{WANDB_API_KEY: mock.apiKey, WANDB_BASE_URL: mock.url}, {}, /no project/],
    ] as const) {
      const r = await publishLeaderboardRow(ROW, [], target, depsFor(env))
      assert.equal(r.sent, false)
      assert.match(r.detail, why)
    }
    assert.equal(mock.requests.length, 0, 'no request without a key / offline / project')
    const failed = await publishLeaderboardRow(ROW, [], {project: 'p'}, depsFor({WANDB_API_KEY: mock.apiKey, WANDB_BASE_URL: mock.url}))
    assert.equal(failed.sent, false)
    assert.match(failed.detail, /not sent/)
    assert.ok(!failed.detail.includes(mock.apiKey))
  })

  it('turns numeric cells into numbers and drops empty ones', () => {
    assert.deepEqual(leaderboardSummary({a: '1e-3', b: 'x', c: '', d: '-2.5'}), {a: 0.001, b: 'x', d: -2.5})
  })
})
