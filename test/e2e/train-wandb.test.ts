/** `ups train` with W&B on: one run, every epoch record with its step, the config, the best checkpoints, finished. */
import assert from 'node:assert/strict'
import {readdir, readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {test} from 'node:test'

import {startMockWandb} from '../fixtures/mock-wandb.js'
import {runCli, tempDir} from '../helpers.js'
import {tinyConfig} from './train-fixtures.js'

test('ups train mirrors metrics, config and best checkpoints to W&B, and the key is written nowhere', {timeout: 300_000}, async (t) => {
  const dir = await tempDir(t)
  const key = 'train-e2e-wandb-key-5f4e3d2c1b'
  const mock = await startMockWandb({apiKey: key})
  t.after(() => mock.close())
  const config = tinyConfig(join(dir, 'data'), 'logging:\n  wandb: {enabled: true, project: ups-e2e, run_name: "tiny-${seed}", tags: [e2e]}\n')
  await writeFile(join(dir, 'c.yaml'), config)
  const r = await runCli(['train', 'c.yaml', '--backend', 'wasm', '--run-dir', 'run', '--json'], {
    cwd: dir, env: {WANDB_API_KEY: key, WANDB_BASE_URL: mock.url, WANDB_MODE: ''}, timeoutMs: 280_000,
  })
  assert.equal(r.code, 0, r.stderr)
  const run = [...mock.runs.values()][0]
  assert.ok(run, 'a W&B run was created')
  assert.equal(mock.runs.size, 1, 'one W&B run per training run')
  assert.equal(run.displayName, 'tiny-3')
  assert.deepEqual(run.tags, ['e2e'])
  assert.deepEqual(run.config.latent, {value: {dim: 4, tokens: 4}, desc: null})
  const history = (await readFile(join(dir, 'run', 'history.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l))
  assert.equal(run.history.length, history.length, 'every local history record arrives once')
  assert.ok(run.history.some((row) => typeof row['operator/loss'] === 'number'))
  const files = Object.keys(run.files)
  for (const stage of ['autoencoder', 'operator']) assert.ok(files.some((f) => f.includes(`${stage}_best.ckpt`) && f.endsWith('weights.bin')), `${stage}_best weights uploaded: ${files.join(', ')}`)
  assert.equal(run.state, 'finished')
  const descriptor = JSON.parse(await readFile(join(dir, 'artifacts', 'wandb_run.json'), 'utf8'))
  assert.equal(descriptor.project, 'ups-e2e')
  assert.equal(descriptor.name, 'tiny-3')
  assert.match(descriptor.url, /ups-e2e/)
  const written = await readdir(join(dir, 'run'), {recursive: true})
  for (const rel of written) {
    const text = await readFile(join(dir, 'run', String(rel))).catch(() => Buffer.alloc(0))
    assert.ok(!text.includes(key), `the API key is in ${rel}`)
  }
})
