import assert from 'node:assert/strict'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {historyWriter} from '../../../src/tracking/rundir.js'
import {runUrl} from '../../../src/tracking/wandb-client.js'
import {syncRun} from '../../../src/tracking/wandb.js'
import {startMockWandb, type MockWandb} from '../../fixtures/mock-wandb.js'
import {fakeDeps, newRun} from './wandb-helpers.js'

let tmp: string
let mock: MockWandb
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'ups-wandb-sync-'))
  mock = await startMockWandb()
})
after(async () => {
  await mock.close()
  await rm(tmp, {recursive: true, force: true})
})

describe('syncRun of a run that never mirrored', () => {
  it('needs a project: from the config or the caller', async () => {
    const dir = await newRun(join(tmp, 'np'), {latent: {dim: 8}})
    const w = historyWriter(dir)
    await w.log(0, {loss: 1}, new Date(Date.UTC(2025, 0, 1)))
    await w.close()
    const deps = fakeDeps({WANDB_API_KEY: mock.apiKey, WANDB_BASE_URL: mock.url})
    const before = mock.requests.length
    await assert.rejects(syncRun(dir, deps), {code: 'WANDB_NO_PROJECT', exitCode: 2})
    assert.equal(mock.requests.length, before)
    // No entity configured: the viewer's default entity is asked for and used.
    const result = await syncRun(dir, deps, {settings: {project: 'given'}})
    assert.equal(result.run.entity, 'mock-entity')
    assert.equal(result.completed, false, 'a run whose metadata says created/running is not marked finished')
    assert.deepEqual(mock.run('given', dir.id)?.history.map((r) => r.loss), [1])
    assert.equal(mock.run('given', dir.id)?.state, 'running')
  })
})

describe('runUrl', () => {
  it('maps the API host to the app host', () => {
    assert.equal(runUrl('https://api.wandb.ai', 'team', 'proj', 'run_1'), 'https://wandb.ai/team/proj/runs/run_1')
    assert.equal(runUrl('https://wandb.example.org/', 'team', 'p q', 'r'), 'https://wandb.example.org/team/p%20q/runs/r')
  })
})
