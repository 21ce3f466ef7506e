import assert from 'node:assert/strict'
import {test} from 'node:test'

import {CHECKS, type CheckContext, type CheckStatus} from '../../../src/config/checks.js'
import {configSchema, latentCacheConfigHash, type UpsConfig} from '../../../src/config/index.js'

/** A config that passes every check. */
function good(): Record<string, any> {
  return {
    seed: 1,
    data: {task: 'burgers1d', split: 'train', root: '/data', patch_size: 2, resolution: 256},
    latent: {dim: 32, tokens: 32},
    operator: {pdet: {input_dim: 32, hidden_dim: 96, depths: [1, 1, 1], group_size: 12, num_heads: 6}},
    diffusion: {latent_dim: 32, hidden_dim: 96},
    training: {batch_size: 12, accum_steps: 2, grad_clip: 1, ema_decay: 0.999, time_stride: 2, dt: 0.1, latent_cache_dir: '/cache'},
    optimizer: {name: 'adamw', lr: 1e-3, weight_decay: 0.01},
    scheduler: {name: 'cosineannealinglr', t_max: 10, eta_min: 1e-5},
    stages: {autoencoder: {epochs: 2}, operator: {epochs: 5}, diff_residual: {epochs: 1}},
    checkpoint: {dir: '/ckpt'},
    ttc: {enabled: true, decoder: {latent_dim: 32, hidden_dim: 96, num_heads: 6}},
    logging: {wandb: {enabled: true, project: 'p', entity: 'e'}},
    vast: {gpu: 'A100', max_price: 2, budget_usd: 10},
  }
}

interface FakeFs {
  existing?: string[]
  writable?: boolean
  json?: Record<string, unknown>
}

async function runCheck(id: string, mutate: (c: Record<string, any>) => void, opts: {fs?: FakeFs; env?: NodeJS.ProcessEnv; noData?: boolean} = {}) {
  const raw = good()
  mutate(raw)
  const config = configSchema.parse(raw) as UpsConfig
  const fs = opts.fs ?? {}
  const ctx: CheckContext = {
    config,
    env: opts.env ?? {WANDB_API_KEY: 'k'},
    cwd: '/',
    noData: opts.noData ?? false,
    fs: {
      exists: async (p) => (fs.existing ?? ['/data']).includes(p),
      canWriteDir: async () => fs.writable ?? true,
      readJson: async (p) => fs.json?.[p],
      listDir: async (d) => [...new Set(Object.keys(fs.json ?? {}).filter((p) => p.startsWith(`${d}/`)).map((p) => p.slice(d.length + 1).split('/')[0]))],
    },
  }
  const check = CHECKS.find((c) => c.id === id)
  assert.ok(check, `no check ${id}`)
  return check.run(ctx)
}

const keep = () => {}

/** [check id, mutation, expected status, message pattern] */
const CASES: [string, (c: Record<string, any>) => void, CheckStatus, RegExp?][] = [
  ['arch.latent_dim_positive', keep, 'pass'],
  ['arch.latent_dim_positive', (c) => (c.latent.dim = 0), 'fail', /latent\.dim \(0\)/],
  ['arch.input_dim_matches_latent', keep, 'pass'],
  ['arch.input_dim_matches_latent', (c) => (c.operator.pdet.input_dim = 16), 'fail', /input_dim \(16\) != latent\.dim \(32\)/],
  ['arch.group_size_divides_hidden', keep, 'pass'],
  ['arch.group_size_divides_hidden', (c) => (c.operator.pdet.group_size = 10), 'fail', /not divisible by group_size \(10\); try group_size 8 or 12/],
  ['arch.heads_divide_group_size', keep, 'pass'],
  ['arch.heads_divide_group_size', (c) => (c.operator.pdet.num_heads = 5), 'fail', /group_size \(12\) is not divisible by num_heads \(5\)/],
  ['arch.depths_nonempty', keep, 'pass'],
  ['arch.depths_nonempty', (c) => (c.operator.pdet.depths = []), 'fail', /empty/],
  ['arch.tokens_divisible_by_levels', keep, 'pass'],
  ['arch.tokens_divisible_by_levels', (c) => (c.latent.tokens = 30), 'fail', /divisible by 4.*use 32/],
  ['arch.memory_fits', keep, 'pass', /peak ~\d+\.\d MB \(operator\) of the A100's 80 GB/],
  ['arch.memory_fits', (c) => (c.latent.dim = 1e8), 'fail', /needs about \d+\.\d [GT]B \(.* parameters: .* of weights, gradients and optimizer state; .* of activations at batch \d+\), more than the A100's 80 GB.*lower latent\.dim/],
  ['arch.memory_fits', (c) => (c.latent.tokens = 2 ** 20), 'fail', /operator needs about [\d,]+ TB/],
  ['arch.memory_fits', (c) => (c.operator.pdet.hidden_dim = 2 ** 20), 'fail', /operator needs/],
  ['arch.memory_fits', (c) => (c.training.batch_size = 1e8), 'fail', /at batch 100000000/],
  ['arch.memory_fits', (c) => (c.data.resolution = 2 ** 30), 'fail', /autoencoder needs/],
  ['arch.memory_fits', (c) => ((c.vast.gpu = 'RTX_4090'), (c.operator.pdet.hidden_dim = 6400), (c.operator.pdet.group_size = 64)), 'warn', /over 80% of the RTX_4090's 24 GB/],
  ['arch.diffusion_latent_matches', keep, 'pass'],
  ['arch.diffusion_latent_matches', (c) => (c.diffusion.latent_dim = 64), 'fail', /64/],
  ['arch.ttc_decoder_consistent', keep, 'pass'],
  ['arch.ttc_decoder_consistent', (c) => (c.ttc.decoder.latent_dim = 16), 'fail', /ttc\.decoder\.latent_dim \(16\)/],
  ['arch.ttc_decoder_consistent', (c) => (c.ttc.enabled = false), 'skip'],
  ['data.task_known', keep, 'pass'],
  ['data.task_known', (c) => (c.data.task = ['burgers1d', 'heat9d']), 'fail', /unknown task heat9d/],
  ['data.split_valid', keep, 'pass'],
  ['data.root_exists', keep, 'pass'],
  ['data.root_exists', (c) => (c.data.root = '/missing'), 'fail', /ups data fetch/],
  ['data.patch_size_divides_grid', keep, 'pass'],
  ['data.patch_size_divides_grid', (c) => (c.data.patch_size = 3), 'fail', /data\.patch_size \(3\) does not divide a token's span of 8 points/],
  ['data.patch_size_divides_grid', (c) => (c.data.patch_size = 8), 'pass'],
  ['data.patch_size_divides_grid', (c) => (c.latent.tokens = 24), 'fail', /latent\.tokens \(24\) does not tile the grid \(256 points\)/],
  ['hparams.learning_rates_in_range', keep, 'pass'],
  ['hparams.learning_rates_in_range', (c) => (c.stages.operator.optimizer = {lr: 0.5}), 'warn', /operator lr 0\.5/],
  ['hparams.weight_decay_in_range', keep, 'pass'],
  ['hparams.weight_decay_in_range', (c) => (c.optimizer.weight_decay = 0.9), 'warn', /0\.9/],
  ['hparams.grad_clip_sensible', keep, 'pass'],
  ['hparams.grad_clip_sensible', (c) => (c.training.grad_clip = null), 'warn', /no gradient clipping/],
  ['hparams.grad_clip_sensible', (c) => (c.training.grad_clip = 100), 'warn', /outside/],
  ['hparams.ema_decay_in_range', keep, 'pass'],
  ['hparams.ema_decay_in_range', (c) => (c.training.ema_decay = 0.5), 'warn', /0\.5/],
  ['hparams.time_stride_valid', keep, 'pass'],
  ['hparams.time_stride_valid', (c) => (c.training.time_stride = 0), 'fail', /must be >= 1/],
  ['hparams.dt_positive', keep, 'pass'],
  ['hparams.dt_positive', (c) => (c.training.dt = -0.1), 'fail', /must be > 0/],
  ['hparams.batch_size_for_model', keep, 'pass'],
  ['hparams.batch_size_for_model', (c) => (c.training.batch_size = 1), 'warn', /noisy/],
  ['hparams.batch_size_for_model', (c) => ((c.training.batch_size = 4096), (c.latent.tokens = 1024)), 'warn', /GB of activations/],
  ['hparams.effective_batch_size', keep, 'pass'],
  ['hparams.effective_batch_size', (c) => ((c.training.batch_size = 1), (c.training.accum_steps = 1)), 'warn', /1x1/],
  ['stages.operator_epochs_positive', keep, 'pass'],
  ['stages.operator_epochs_positive', (c) => (c.stages.operator.epochs = 0), 'fail', /epochs is 0/],
  ['stages.epochs_nonnegative', keep, 'pass'],
  ['stages.epochs_nonnegative', (c) => (c.stages.steady_prior = {epochs: -1}), 'warn', /steady_prior/],
  ['stages.optimizer_resolvable', keep, 'pass'],
  ['stages.optimizer_resolvable', (c) => (c.stages.operator.optimizer = {name: 'sgd', momentum: 0}), 'warn', /sgd without momentum/],
  ['stages.scheduler_consistent', keep, 'pass'],
  ['stages.scheduler_consistent', (c) => (c.scheduler = {name: 'cosineannealinglr', t_max: 0}), 'fail', /t_max \(0\)/],
  ['stages.scheduler_consistent', (c) => (c.scheduler = {name: 'steplr'}), 'fail', /step_size/],
  ['stages.scheduler_consistent', (c) => (c.scheduler = {name: 'cosineannealinglr', t_max: 5, eta_min: 0.1}), 'fail', /eta_min \(0\.1\) must be below lr/],
  ['checkpoint.dir_writable', keep, 'pass'],
  ['cache.latent_cache_matches', keep, 'pass'],
  ['cache.latent_cache_matches', (c) => delete c.training.latent_cache_dir, 'skip'],
  ['wandb.project_set', keep, 'pass'],
  ['wandb.project_set', (c) => delete c.logging.wandb.project, 'fail', /project is not set/],
  ['wandb.project_set', (c) => (c.logging.wandb.enabled = false), 'skip'],
  ['wandb.api_key_present', keep, 'pass'],
  ['wandb.entity_set', keep, 'pass'],
  ['wandb.entity_set', (c) => delete c.logging.wandb.entity, 'warn', /entity/],
  ['vast.gpu_known', keep, 'pass'],
  ['vast.gpu_known', (c) => (c.vast.gpu = 'rtx 4090'), 'pass', /RTX_4090/],
  ['vast.gpu_known', (c) => (c.vast.gpu = 'TPUv9'), 'fail', /not in the pricing table/],
  ['vast.gpu_known', (c) => delete c.vast, 'skip'],
  ['vast.max_price_positive', keep, 'pass'],
  ['vast.max_price_positive', (c) => (c.vast.max_price = 0), 'fail', /max_price \(0\)/],
]

for (const [id, mutate, status, pattern] of CASES) {
  test(`${id}: ${status}${pattern ? ` ${pattern}` : ''}`, async () => {
    const outcome = await runCheck(id, mutate)
    assert.equal(outcome.status, status, outcome.message)
    if (pattern) assert.match(outcome.message, pattern)
  })
}

test('every check has a passing and a non-passing case above', () => {
  for (const check of CHECKS) {
    const statuses = new Set(CASES.filter(([id]) => id === check.id).map(([, , s]) => s))
    assert.ok(statuses.has('pass'), `${check.id} has no passing case`)
    // These take their failing inputs from the environment or filesystem: tested below.
    const elsewhere = ['data.split_valid', 'checkpoint.dir_writable', 'wandb.api_key_present']
    if (!elsewhere.includes(check.id)) assert.ok(statuses.size > 1, `${check.id} has no failing, warning or skip case`)
  }
})

test('data.root_exists: a missing root is only a warning in --no-data mode, and fine when data.generate is set', async () => {
  assert.equal((await runCheck('data.root_exists', (c) => (c.data.root = '/missing'), {noData: true})).status, 'warn')
  assert.equal((await runCheck('data.root_exists', (c) => ((c.data.root = '/missing'), (c.data.generate = {samples: 8})))).status, 'pass')
})

test('checkpoint.dir_writable fails when the folder cannot be written', async () => {
  const outcome = await runCheck('checkpoint.dir_writable', keep, {fs: {writable: false}})
  assert.equal(outcome.status, 'fail')
})

test('wandb.api_key_present warns without a key and passes in offline mode', async () => {
  assert.equal((await runCheck('wandb.api_key_present', keep, {env: {}})).status, 'warn')
  assert.equal((await runCheck('wandb.api_key_present', keep, {env: {WANDB_MODE: 'offline'}})).status, 'pass')
})

test('cache.latent_cache_matches warns when a cached split was built for another config', async () => {
  const config = configSchema.parse(good()) as UpsConfig
  const fresh = {'/cache/burgers1d_train/meta.json': {config_hash: latentCacheConfigHash(config)}}
  assert.match((await runCheck('cache.latent_cache_matches', keep, {fs: {json: fresh}})).message, /1 cached split\(s\) match/)
  // Keyed folders (one per autoencoder and data): any one built for this config matches.
  const keyed = {'/cache/burgers1d_train-0123456789abcdef/meta.json': {config_hash: 'other'}, '/cache/burgers1d_train-fedcba9876543210/meta.json': {config_hash: latentCacheConfigHash(config)}}
  assert.match((await runCheck('cache.latent_cache_matches', keep, {fs: {json: keyed}})).message, /1 cached split\(s\) match/)
  const stale = {'/cache/burgers1d_val-0123456789abcdef/meta.json': {config_hash: 'other'}}
  const outcome = await runCheck('cache.latent_cache_matches', keep, {fs: {json: stale}})
  assert.equal(outcome.status, 'warn')
  assert.match(outcome.message, /burgers1d_val .*rebuilt/)
})

test('check ids are unique and documented in the README', async () => {
  const {readFile} = await import('node:fs/promises')
  const readme = await readFile(new URL('../../../README.md', import.meta.url), 'utf8')
  const ids = CHECKS.map((c) => c.id)
  assert.equal(new Set(ids).size, ids.length)
  for (const id of [...ids, 'schema.valid', 'schema.known_keys']) assert.ok(readme.includes(`\`${id}\``), `README does not document ${id}`)
})
