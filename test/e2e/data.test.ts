import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {mkdtemp, readdir, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {REPO_ROOT} from '../helpers.js'

const bin = join(process.cwd(), 'bin', 'run.js')
const ups = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], {encoding: 'utf8', env: {...process.env, NO_COLOR: '1'}})

let dir: string
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ups-e2e-data-'))
})
after(() => rm(dir, {recursive: true, force: true}))

describe('ups data generate / validate', () => {
  it('generates, then validates (text and --json)', () => {
    const out = join(dir, 'd')
    const g = ups('data', 'generate', 'burgers1d', '--out', out, '--samples', '5', '--nx', '32', '--nt', '11', '--seed', '1', '--json')
    assert.equal(g.status, 0, g.stderr)
    const result = JSON.parse(g.stdout)
    assert.deepEqual(result.files.map((f: any) => f.split), ['train', 'val', 'test'])
    assert.equal(result.totalSamples, 5)
    assert.match(g.stderr, /generate: 5\/5 \(100%\)/, 'plain progress lines when stderr is not a TTY')

    const v = ups('data', 'validate', '--data-root', out, '--task', 'burgers1d')
    assert.equal(v.status, 0, v.stdout + v.stderr)
    assert.match(v.stdout, /✅ Data is valid/)
    const vj = ups('data', 'validate', '--data-root', out, '--task', 'burgers1d', '--split', 'train', '--json')
    assert.equal(vj.status, 0)
    assert.equal(JSON.parse(vj.stdout).files[0].checks.find((c: any) => c.id === 'values').status, 'ok')
  })

  it('takes data.root/task/split from a config file', async () => {
    const cfg = join(dir, 'cfg.yaml')
    // A full config (the shipped defaults) whose data section points at the generated files.
    await writeFile(cfg, `include: ${join(REPO_ROOT, 'configs/defaults.yaml')}\ndata:\n  root: ${join(dir, 'd')}\n  task: burgers1d\n  split: test\n`)
    const v = ups('data', 'validate', cfg, '--json')
    assert.equal(v.status, 0, v.stdout + v.stderr)
    assert.deepEqual(JSON.parse(v.stdout).files.map((f: any) => f.split), ['test'])
  })

  it('exits 1 on corrupt data and quarantines it with a re-fetch hint', async () => {
    const out = join(dir, 'd')
    await writeFile(join(out, 'burgers1d_val.h5'), 'truncated download')
    const q = join(dir, 'q')
    const v = ups('data', 'validate', '--data-root', out, '--task', 'burgers1d', '--quarantine', q)
    assert.equal(v.status, 1)
    assert.match(v.stdout, /✗ .*burgers1d_val\.h5: hdf5: /)
    assert.match(v.stdout, /re-fetch: ups data fetch /)
    assert.match(v.stdout, /❌ Data is invalid: 1 of 3 file\(s\) failed/)
    assert.deepEqual((await readdir(q)).sort(), ['burgers1d_val.h5', 'burgers1d_val.h5.reason.json'])
    const vj = ups('data', 'validate', '--data-root', out, '--task', 'burgers1d', '--json')
    assert.equal(vj.status, 1)
    assert.equal(JSON.parse(vj.stdout).ok, false)
  })

  it('usage errors exit 2 with a code under --json', () => {
    const a = ups('data', 'validate', '--json')
    assert.equal(a.status, 2)
    assert.equal(JSON.parse(a.stdout).error.code, 'USAGE')
    const b = ups('data', 'generate', 'burgers1d', '--out', join(dir, 'x'), '--splits', 'train=0.5', '--json')
    assert.equal(b.status, 2)
    assert.equal(JSON.parse(b.stdout).error.code, 'DATA_BAD_SPLITS')
    const c = ups('data', 'validate', '--data-root', dir, '--task', 'nosuchtask')
    assert.equal(c.status, 2)
    assert.match(c.stderr, /Unknown task "nosuchtask"/)
  })
})
