import assert from 'node:assert/strict'
import {join} from 'node:path'
import {test} from 'node:test'

import {deepMerge, loadConfig, loadRawConfig} from '../../../src/config/index.js'
import {MAX_CONFIG_BYTES} from '../../../src/config/load.js'
import {tempDir, writeFiles} from '../../helpers.js'
import {MINIMAL, rejectsWith} from './config-fixtures.js'

const polluted = () => ({} as Record<string, unknown>).x !== undefined || ({} as Record<string, unknown>).y !== undefined

test('__proto__, constructor and prototype are refused in --set paths and values, with exit 2', async (t) => {
  const dir = await tempDir(t)
  await writeFiles(dir, {'c.yaml': MINIMAL})
  const c = join(dir, 'c.yaml')
  for (const set of ['__proto__.x=1', 'constructor.prototype.y=1', 'training.__proto__.x=1', 'training.constructor=1', 'training={__proto__: {x: 1}}', 'logging.wandb.tags=[{prototype: 1}]']) {
    const error = await rejectsWith(loadRawConfig(c, {overrides: [set]}), 'CONFIG_FORBIDDEN_KEY')
    assert.ok(error.message.includes(`--set ${set}`), error.message)
    assert.equal(error.exitCode, 2)
  }
  assert.ok(!polluted(), 'Object.prototype is untouched')
  // ${} references never reach inherited properties (Object's constructor, the prototype).
  for (const ref of ['constructor', 'training.__proto__', 'data.constructor.name']) {
    await rejectsWith(loadRawConfig(c, {overrides: [`seed=\${${ref}}`]}), 'CONFIG_INTERPOLATION', /refers to a key that does not exist/)
  }
})

test('a forbidden key anywhere in a YAML file or an include is an error at its file:line', async (t) => {
  const dir = await tempDir(t)
  await writeFiles(dir, {
    'top.yaml': `${MINIMAL}__proto__:\n  x: 1\n`,
    'nested.yaml': `${MINIMAL}training:\n  batch_size: 4\n  constructor:\n    prototype: {y: 1}\n`,
    'inlist.yaml': `${MINIMAL}logging:\n  wandb:\n    tags:\n      - {prototype: 1}\n`,
    'base.yaml': `${MINIMAL}seed: 1\n__proto__: {x: 1}\n`,
    'inc.yaml': 'include: base\nseed: 2\n',
  })
  await rejectsWith(loadRawConfig(join(dir, 'top.yaml'), {deps: {cwd: dir}}), 'CONFIG_FORBIDDEN_KEY', /^top\.yaml:8:1: the key "__proto__"/)
  await rejectsWith(loadRawConfig(join(dir, 'nested.yaml'), {deps: {cwd: dir}}), 'CONFIG_FORBIDDEN_KEY', /^nested\.yaml:10:3: the key "constructor"/)
  await rejectsWith(loadRawConfig(join(dir, 'inlist.yaml'), {deps: {cwd: dir}}), 'CONFIG_FORBIDDEN_KEY', /^inlist\.yaml:11:10: the key "prototype"/)
  const error = await rejectsWith(loadRawConfig(join(dir, 'inc.yaml'), {deps: {cwd: dir}}), 'CONFIG_FORBIDDEN_KEY', /^base\.yaml:9:1:/)
  assert.equal(error.exitCode, 2)
  assert.ok(!polluted())
})

test('deepMerge never follows or writes a __proto__ key, even one the caller passes', () => {
  const over = JSON.parse('{"__proto__": {"x": 1}, "a": {"constructor": {"prototype": {"y": 1}}, "b": 2}}') as Record<string, unknown>
  const merged = deepMerge({a: {c: 3}}, over)
  assert.deepEqual(merged, {a: {c: 3, b: 2}})
  assert.equal(Object.getPrototypeOf(merged), Object.prototype)
  assert.ok(!polluted())
})

test('a YAML alias bomb is refused with exit 2 at the line where aliases nest', async (t) => {
  const dir = await tempDir(t)
  const rows = ['a: &a [x, x, x, x, x, x, x, x, x]']
  for (const [name, prev] of [['b', 'a'], ['c', 'b'], ['d', 'c'], ['e', 'd'], ['f', 'e'], ['g', 'f']]) rows.push(`${name}: &${name} [${Array(9).fill('*' + prev).join(', ')}]`)
  await writeFiles(dir, {'bomb.yaml': rows.join('\n') + '\n'})
  const error = await rejectsWith(loadRawConfig(join(dir, 'bomb.yaml'), {deps: {cwd: dir}}), 'CONFIG_ALIAS_BOMB', /^bomb\.yaml:3:\d+: YAML aliases expand too far/)
  assert.equal(error.exitCode, 2)
  // A few ordinary aliases still work.
  await writeFiles(dir, {'ok.yaml': `${MINIMAL}optimizer: &opt {lr: 0.001}\nscheduler: {name: steplr, step_size: 1}\nlogging: {wandb: {tags: [&t x, *t, *t]}}\n`})
  const {config} = await loadConfig(join(dir, 'ok.yaml'))
  assert.deepEqual(config.logging?.wandb?.tags, ['x', 'x', 'x'])
})

test('a config file over the size cap is refused before it is parsed (exit 2, size and cap named)', async (t) => {
  const dir = await tempDir(t)
  await writeFiles(dir, {'big.yaml': MINIMAL + '# ' + 'x'.repeat(MAX_CONFIG_BYTES) + '\n'})
  const error = await rejectsWith(loadRawConfig(join(dir, 'big.yaml'), {deps: {cwd: dir}}), 'CONFIG_TOO_LARGE', /^big\.yaml: the config file is 1\.0 MiB; configs are capped at 1 MiB/)
  assert.equal(error.exitCode, 2)
  // An injected reader (no stat) is capped too.
  await rejectsWith(loadRawConfig('/x.yaml', {deps: {cwd: '/', readFile: async () => 'a: 1\n'.repeat(MAX_CONFIG_BYTES)}}), 'CONFIG_TOO_LARGE')
})

test('NaN and Infinity in numeric fields fail the schema naming the key and the value', async (t) => {
  const dir = await tempDir(t)
  await writeFiles(dir, {'c.yaml': MINIMAL + 'training:\n  dt: .nan\n  grad_clip: .inf\noptimizer: {lr: 1e400}\n'})
  const error = await rejectsWith(loadConfig(join(dir, 'c.yaml'), {deps: {cwd: dir}}), 'CONFIG_INVALID')
  assert.match(error.message, /c\.yaml:9:3: training\.dt: expected a finite number, got NaN/)
  assert.match(error.message, /c\.yaml:10:3: training\.grad_clip: expected a finite number, got Infinity/)
  assert.match(error.message, /c\.yaml:11:\d+: optimizer\.lr: expected a finite number, got Infinity/)
})
