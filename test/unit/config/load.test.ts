import assert from 'node:assert/strict'
import {join} from 'node:path'
import {test} from 'node:test'

import {dataSourceOf, deepMerge, latentCacheConfigHash, loadConfig, loadRawConfig} from '../../../src/config/index.js'
import {REPO_ROOT, tempDir, writeFiles} from '../../helpers.js'
import {MINIMAL, rejectsWith} from './config-fixtures.js'


test('include chains merge maps key by key and replace lists and scalars', async (t) => {
  const dir = await tempDir(t)
  await writeFiles(dir, {
    'base.yaml': `${MINIMAL}\ntraining: {batch_size: 8, grad_clip: 1.0}\nlogging: {wandb: {tags: [a, b]}}\n`,
    'mid/middle.yaml': 'include: ../base\ntraining: {batch_size: 16}\n',
    'top.yaml': 'include: mid/middle.yaml\nlogging: {wandb: {tags: [c]}}\nlatent: {dim: 24}\n',
  })
  const {config, files} = await loadConfig(join(dir, 'top.yaml'), {deps: {cwd: dir}})
  assert.equal(config.training?.batch_size, 16, 'the middle file overrides the base')
  assert.equal(config.training?.grad_clip, 1.0, 'untouched keys of a merged map survive')
  assert.deepEqual(config.logging?.wandb?.tags, ['c'], 'lists replace, never concatenate')
  assert.equal(config.latent.dim, 24)
  assert.equal(config.latent.tokens, 8, 'sibling keys survive a partial override')
  assert.deepEqual(files.map((f) => f.slice(dir.length + 1)), ['top.yaml', 'mid/middle.yaml', 'base.yaml'])
})

test('a list of includes applies in order, later ones winning', async (t) => {
  const dir = await tempDir(t)
  await writeFiles(dir, {'a.yaml': MINIMAL + 'seed: 1\n', 'b.yaml': 'seed: 2\n', 'c.yaml': 'include: [a, b]\n'})
  const {config} = await loadConfig(join(dir, 'c.yaml'))
  assert.equal(config.seed, 2)
})

test('an include cycle is an error naming the whole chain', async (t) => {
  const dir = await tempDir(t)
  await writeFiles(dir, {'a.yaml': 'include: b.yaml\n', 'b.yaml': 'include: c\n', 'c.yaml': 'include: a.yaml\n'})
  const error = await rejectsWith(loadRawConfig(join(dir, 'a.yaml'), {deps: {cwd: dir}}), 'CONFIG_INCLUDE_CYCLE')
  assert.match(error.message, /a\.yaml -> b\.yaml -> c\.yaml -> a\.yaml/)
  assert.equal(error.exitCode, 2)
})

test('a missing include names the including file and line', async (t) => {
  const dir = await tempDir(t)
  await writeFiles(dir, {'a.yaml': 'seed: 1\ninclude: nope\n'})
  const error = await rejectsWith(loadRawConfig(join(dir, 'a.yaml'), {deps: {cwd: dir}}), 'CONFIG_INCLUDE_MISSING')
  assert.match(error.message, /a\.yaml:2:1: included config nope\.yaml does not exist/)
})

test('--set overrides parse values as YAML and create missing maps', async (t) => {
  const dir = await tempDir(t)
  await writeFiles(dir, {'c.yaml': MINIMAL})
  const {config} = await loadConfig(join(dir, 'c.yaml'), {
    overrides: ['training.batch_size=32', 'logging.wandb.tags=[x, y]', 'logging.wandb.enabled=true', 'data.task=advection1d'],
  })
  assert.equal(config.training?.batch_size, 32)
  assert.deepEqual(config.logging?.wandb?.tags, ['x', 'y'])
  assert.equal(config.logging?.wandb?.enabled, true)
  assert.equal(config.data.task, 'advection1d')
  await rejectsWith(loadRawConfig(join(dir, 'c.yaml'), {overrides: ['no_equals_sign']}), 'CONFIG_SET_INVALID')
  await rejectsWith(loadRawConfig(join(dir, 'c.yaml'), {overrides: ['a..b=1']}), 'CONFIG_SET_INVALID')
})

test('${} interpolation reads the merged config (typed when whole) and the environment', async (t) => {
  const dir = await tempDir(t)
  await writeFiles(dir, {
    'base.yaml': MINIMAL,
    'c.yaml': `include: base
seed: 7
operator:
  pdet:
    input_dim: \${latent.dim}
    hidden_dim: 32
    depths: [1, 1]
    group_size: 8
    num_heads: 2
logging:
  wandb: {run_name: "burgers-\${latent.dim}d-s\${seed}", project: "\${env:WB_PROJECT}", entity: "\${env:WB_ENTITY:-team}"}
`,
  })
  const {config} = await loadConfig(join(dir, 'c.yaml'), {overrides: ['latent.dim=24'], deps: {env: {WB_PROJECT: 'proj'}}})
  assert.equal(config.operator.pdet.input_dim, 24, 'a whole-string reference keeps the number type and sees --set')
  assert.equal(config.logging?.wandb?.run_name, 'burgers-24d-s7')
  assert.equal(config.logging?.wandb?.project, 'proj')
  assert.equal(config.logging?.wandb?.entity, 'team', 'the :- default applies when the variable is unset')
  const missingEnv = await rejectsWith(loadRawConfig(join(dir, 'c.yaml'), {deps: {env: {}}}), 'CONFIG_INTERPOLATION')
  assert.match(missingEnv.message, /WB_PROJECT is not set/)
  assert.match(missingEnv.message, /c\.yaml:11:\d+: logging\.wandb\.project/)
})

test('a reference to a missing key, or a reference cycle, is an error', async (t) => {
  const dir = await tempDir(t)
  await writeFiles(dir, {'a.yaml': 'x: ${nope.key}\n', 'b.yaml': 'x: ${y}\ny: ${x}\n'})
  await rejectsWith(loadRawConfig(join(dir, 'a.yaml')), 'CONFIG_INTERPOLATION', /nope\.key/)
  await rejectsWith(loadRawConfig(join(dir, 'b.yaml')), 'CONFIG_INTERPOLATION', /nest too deep/)
})

test('PDEBENCH_ROOT is the fallback for data.root, never an override', async (t) => {
  const dir = await tempDir(t)
  await writeFiles(dir, {'no-root.yaml': MINIMAL.replace('root: data', 'split: train'), 'root.yaml': MINIMAL})
  const fallback = await loadConfig(join(dir, 'no-root.yaml'), {deps: {env: {PDEBENCH_ROOT: '/mnt/pdebench'}}})
  assert.equal(fallback.config.data.root, '/mnt/pdebench')
  const explicit = await loadConfig(join(dir, 'root.yaml'), {deps: {env: {PDEBENCH_ROOT: '/mnt/pdebench'}}})
  assert.equal(explicit.config.data.root, 'data')
})

test('the shipped defaults: $PDEBENCH_ROOT over data/pdebench, a config\'s own data.root over both; raw split defaults', async (t) => {
  const dir = await tempDir(t)
  const defaults = join(REPO_ROOT, 'configs', 'defaults.yaml')
  await writeFiles(dir, {'inherit.yaml': `include: ${defaults}\n`, 'own.yaml': `include: ${defaults}\ndata: {root: mine}\n`})
  const env = {PDEBENCH_ROOT: '/mnt/pdebench'}
  assert.equal((await loadConfig(join(dir, 'inherit.yaml'), {deps: {env}})).config.data.root, '/mnt/pdebench')
  assert.equal((await loadConfig(join(dir, 'inherit.yaml'), {deps: {env: {}}})).config.data.root, 'data/pdebench')
  assert.equal((await loadConfig(join(dir, 'own.yaml'), {deps: {env}})).config.data.root, 'mine')
  // The runbook's main config follows the environment too.
  const main = await loadConfig(join(REPO_ROOT, 'configs', 'train_burgers_32dim.yaml'), {deps: {env}})
  assert.equal(main.config.data.root, '/mnt/pdebench')
  assert.deepEqual(main.config.data.raw_split, {val: 0.05, test: 0.1, seed: null})
  assert.deepEqual(dataSourceOf(main.config), {file: null, split: {val: 0.05, test: 0.1, seed: null}})
  const picked = await loadConfig(join(dir, 'inherit.yaml'), {overrides: ['data.file=1D_Burgers_Sols_Nu0.1.hdf5', 'data.raw_split.seed=3'], deps: {env: {}}})
  assert.deepEqual(dataSourceOf(picked.config), {file: '1D_Burgers_Sols_Nu0.1.hdf5', split: {val: 0.05, test: 0.1, seed: 3}})
  // Another split of the same file is other trajectories: cached latents must not be reused.
  const base = await loadConfig(join(dir, 'inherit.yaml'), {deps: {env: {}}})
  assert.notEqual(latentCacheConfigHash(picked.config), latentCacheConfigHash(base.config))
})

test('YAML syntax errors give file:line:column and exit code 2', async (t) => {
  const dir = await tempDir(t)
  await writeFiles(dir, {'bad.yaml': 'data:\n  task: burgers1d\n  root: [unclosed\nlatent: 3\n'})
  const error = await rejectsWith(loadRawConfig(join(dir, 'bad.yaml'), {deps: {cwd: dir}}), 'CONFIG_PARSE')
  assert.match(error.message, /^bad\.yaml:\d+:\d+: YAML syntax error/)
  assert.equal(error.exitCode, 2)
  await writeFiles(dir, {'list.yaml': '- a\n- b\n', 'dup.yaml': 'a: 1\na: 2\n'})
  await rejectsWith(loadRawConfig(join(dir, 'list.yaml')), 'CONFIG_NOT_MAPPING')
  await rejectsWith(loadRawConfig(join(dir, 'dup.yaml')), 'CONFIG_PARSE', /:2:1:/)
})

test('schema errors name the key path and the line it was set on; unknown keys suggest a fix', async (t) => {
  const dir = await tempDir(t)
  await writeFiles(dir, {
    'base.yaml': MINIMAL,
    'c.yaml': 'include: base\nlatent:\n  dim: "wide"\ntraining:\n  batch_sise: 4\n',
  })
  const error = await rejectsWith(loadConfig(join(dir, 'c.yaml'), {deps: {cwd: dir}}), 'CONFIG_INVALID')
  assert.match(error.message, /c\.yaml:3:3: latent\.dim: expected number, got "wide"/)
  assert.equal(error.exitCode, 1)
  await writeFiles(dir, {'d.yaml': 'include: base\ntraining:\n  batch_sise: 4\n  lr: 0.1\n'})
  const ok = await loadConfig(join(dir, 'd.yaml'), {deps: {cwd: dir}})
  assert.deepEqual(ok.warnings, [
    'd.yaml:3:3: unknown key training.batch_sise (did you mean training.batch_size?)',
    'd.yaml:4:3: unknown key training.lr (did you mean optimizer.lr?)',
  ])
})

test('deepMerge does not mutate its inputs', () => {
  const a = {x: {y: 1, z: [1, 2]}}
  const b = {x: {z: [3]}}
  const merged = deepMerge(a, b)
  assert.deepEqual(merged, {x: {y: 1, z: [3]}})
  assert.deepEqual(a, {x: {y: 1, z: [1, 2]}})
})
