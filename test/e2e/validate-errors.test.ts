/** Hostile or absurd inputs get a clear error and the right exit code, never "Unexpected error". */
import assert from 'node:assert/strict'
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {test} from 'node:test'

import {loadH5} from '../../src/data/h5.js'
import {hasStackTrace, REPO_ROOT, runCli, tempDir, writeFiles} from '../helpers.js'

const SMOKE = join(REPO_ROOT, 'configs', 'local_smoke.yaml')

const clean = (r: {stdout: string; stderr: string}) => {
  assert.doesNotMatch(r.stdout + r.stderr, /Unexpected|internal error/i)
  assert.ok(!hasStackTrace(r.stderr), r.stderr)
}

test('--set __proto__ / constructor.prototype and a YAML __proto__ key exit 2 and pollute nothing', async (t) => {
  for (const set of ['__proto__.x=1', 'constructor.prototype.y=1']) {
    for (const command of [['validate', SMOKE, '--no-data'], ['dry-run', SMOKE, '--static', '--skip-data']]) {
      const r = await runCli([...command, '--set', set, '--json'])
      assert.equal(r.code, 2, `${command[0]} --set ${set}: ${r.stdout}${r.stderr}`)
      const error = JSON.parse(r.stdout).error
      // The dry run wraps the loader's error (its step and cause are in details).
      assert.match(`${error.code} ${error.details?.cause}`, /CONFIG_FORBIDDEN_KEY/, error.message)
      clean(r)
    }
  }
  const dir = await tempDir(t)
  await writeFiles(dir, {'c.yaml': `include: ${SMOKE}\ntraining:\n  __proto__:\n    x: 1\n`})
  const r = await runCli(['validate', join(dir, 'c.yaml')], {cwd: dir})
  assert.equal(r.code, 2)
  assert.match(r.stderr, /^Error: c\.yaml:3:3: the key "__proto__" is not allowed/)
})

test('a YAML alias bomb and an oversized config exit 2 naming the file', async (t) => {
  const dir = await tempDir(t)
  const rows = ['a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]']
  for (let i = 1; i < 9; i++) rows.push(`${'abcdefghi'[i]}: &${'abcdefghi'[i]} [${Array(9).fill('*' + 'abcdefghi'[i - 1]).join(', ')}]`)
  await writeFiles(dir, {'bomb.yaml': rows.join('\n') + '\n'})
  const bomb = await runCli(['validate', 'bomb.yaml'], {cwd: dir})
  assert.equal(bomb.code, 2, bomb.stderr)
  assert.match(bomb.stderr, /^Error: bomb\.yaml:3:\d+: YAML aliases expand too far/)
  clean(bomb)
  await writeFile(join(dir, 'big.yaml'), `include: ${SMOKE}\n# ${'x'.repeat(50 * 1024 * 1024)}\n`)
  const big = await runCli(['validate', 'big.yaml', '--json'], {cwd: dir})
  assert.equal(big.code, 2)
  const error = JSON.parse(big.stdout).error
  assert.equal(error.code, 'CONFIG_TOO_LARGE')
  assert.match(error.message, /big\.yaml: the config file is 50\.0 MiB; configs are capped at 1 MiB/)
})

test('NaN/Infinity and absurd sizes fail ups validate (exit 1) with the key and a memory estimate', async () => {
  const nan = await runCli(['validate', SMOKE, '--no-data', '--set', 'training.dt=.nan', '--set', 'optimizer.lr=1e400'])
  assert.equal(nan.code, 1)
  assert.match(nan.stdout, /training\.dt: expected a finite number, got NaN/)
  assert.match(nan.stdout, /optimizer\.lr: expected a finite number, got Infinity/)
  const huge = await runCli(['validate', SMOKE, '--no-data', '--set', 'latent.dim=1e8', '--set', 'vast.gpu=RTX_4090', '--json'])
  assert.equal(huge.code, 1)
  const check = JSON.parse(huge.stdout).checks.find((c: {id: string}) => c.id === 'arch.memory_fits')
  assert.equal(check.status, 'fail')
  assert.match(check.message, /needs about [\d.]+ [GT]B \([\d.]+ billion parameters: .*\), more than the RTX_4090's 24 GB/)
  clean(huge)
})

test('a 300-character output folder name is a clear ENAMETOOLONG error naming the path (exit 2)', async (t) => {
  const dir = await tempDir(t)
  const long = 'x'.repeat(300)
  const r = await runCli(['data', 'generate', 'burgers1d', '--out', long, '--samples', '3', '--nx', '8', '--nt', '2'], {cwd: dir})
  assert.equal(r.code, 2, r.stderr)
  assert.match(r.stderr, new RegExp(`^Error: The path .*${long}.* has a name that is too long`))
  assert.match(r.stderr, /Hint: Use a shorter file or folder name/)
  clean(r)
  const train = await runCli(['train', SMOKE, '--run-dir', join(dir, long), '--json'], {cwd: dir})
  assert.equal(train.code, 2, train.stdout)
  assert.equal(JSON.parse(train.stdout).error.code, 'FS_ENAMETOOLONG')
})

test('ups data validate refuses a file declaring 1e7 samples in 2 KB, and an empty split (exit 1)', async (t) => {
  const dir = await tempDir(t)
  const h5 = await loadH5()
  for (const [split, samples] of [['train', 10_000_000], ['val', 0]] as const) {
    const f = new h5.File(join(dir, `burgers1d_${split}.h5`), 'w')
    const ds = f.create_dataset({name: 'tensor', data: new Float32Array(0), shape: [0, 3, 16], maxshape: [null, 3, 16], chunks: [1, 3, 16], dtype: '<f'})
    ds.resize([samples, 3, 16])
    f.close()
  }
  const r = await runCli(['data', 'validate', '--data-root', dir, '--task', 'burgers1d', '--split', 'train'])
  assert.equal(r.code, 1, r.stdout + r.stderr)
  assert.match(r.stdout, /burgers1d_train\.h5: layout: it declares 10000000 samples .* but is only [\d.]+ (bytes|KB)/)
  const empty = await runCli(['data', 'validate', '--data-root', dir, '--task', 'burgers1d', '--split', 'val'])
  assert.equal(empty.code, 1)
  assert.match(empty.stdout, /burgers1d_val\.h5: values: the file holds 0 samples: the split is empty/)
})
