import assert from 'node:assert/strict'
import {join} from 'node:path'
import {test} from 'node:test'

import {loadConfig} from '../../../src/config/index.js'
import {validateConfig} from '../../../src/config/validate.js'
import {stageMemory} from '../../../src/config/memory.js'
import {resolveBackend} from '../../../src/training/backend.js'
import {buildAutoencoder, buildCorrector, buildOperator} from '../../../src/training/stages/build.js'
import {REPO_ROOT, tempDir, writeFiles} from '../../helpers.js'

test('the memory estimate counts what the models really hold (within 10%)', async () => {
  await resolveBackend('cpu')
  for (const name of ['local_smoke', 'train_burgers_32dim']) {
    const {config} = await loadConfig(join(REPO_ROOT, 'configs', `${name}.yaml`))
    const batch = config.training?.batch_size ?? 16
    const grid = [config.data.resolution ?? config.data.generate?.nx ?? 1024]
    const op = buildOperator(config, 0)
    const ae = buildAutoencoder(config, grid, 1, 0)
    const corrector = buildCorrector(config, 0)
    const near = (estimate: number, real: number, what: string) => assert.ok(Math.abs(estimate - real) <= 0.1 * real, `${name} ${what}: estimate ${estimate}, real ${real}`)
    near(stageMemory(config, 'operator').params, op.paramCount(), 'operator parameters')
    near(stageMemory(config, 'operator').activationBytes, op.activationBytes(batch), 'operator activations')
    near(stageMemory(config, 'autoencoder').params, ae.paramCount(), 'autoencoder parameters')
    near(stageMemory(config, 'autoencoder').activationBytes, ae.activationBytes(batch), 'autoencoder activations')
    near(stageMemory(config, 'diff_residual').params, corrector.paramCount(), 'corrector parameters')
    op.dispose(), op.store.dispose(), ae.dispose(), ae.store.dispose(), corrector.store.dispose()
  }
})

test('without vast.gpu the cap is this machine: latent.dim 1e8 fails validate with the estimate', async (t) => {
  const dir = await tempDir(t)
  await writeFiles(dir, {'c.yaml': `include: ${join(REPO_ROOT, 'configs', 'local_smoke.yaml')}\nlatent: {dim: 100000000}\n`})
  const result = await validateConfig(join(dir, 'c.yaml'), {noData: true, deps: {cwd: dir, memoryBytes: 16e9}})
  const check = result.checks.find((c) => c.id === 'arch.memory_fits')
  assert.equal(check?.status, 'fail')
  assert.match(check?.message ?? '', /needs about [\d.]+ [GT]B .* more than this machine's 16\.0 GB/)
  assert.equal(result.valid, false)
})
