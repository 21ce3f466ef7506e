import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {after, before, describe, test} from 'node:test'

import {type FakeVast, makeFakeVast} from '../fixtures/fake-vast.js'

const KEY = 'vk_e2e_secret_abcdef0123456789'

describe('ups offers / ups instances against the fake vastai on PATH', () => {
  let fake: FakeVast
  let id: number
  before(() => {
    fake = makeFakeVast({apiKey: KEY})
    id = fake.addInstance({label: 'ups-e2e', fields: {gpu_util: 87.5}})
    fake.writeLog(id, Array.from({length: 30}, (_, i) => `line ${i + 1}`).join('\n') + '\n')
  })
  after(() => fake.cleanup())

  function ups(args: string[], key = KEY) {
    const env = fake.env({VAST_API_KEY: key})
    delete env.UPS_VASTAI_BIN
    const r = spawnSync(process.execPath, ['bin/run.js', ...args], {env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe']})
    const json = () => JSON.parse(r.stdout)
    return {code: r.status, stdout: r.stdout, stderr: r.stderr, json}
  }

  test('offers --json: filtered, ordered, with the documented fields', () => {
    const r = ups(['offers', '--min-gpu-ram', '20', '--max-price', '1', '--json'])
    assert.equal(r.code, 0, r.stderr)
    const out = r.json()
    assert.equal(out.query, 'dph_total<=1 gpu_ram>=20 rentable=true')
    assert.deepEqual(out.offers.map((o: {id: number}) => o.id), [5001001, 5001002])
    assert.deepEqual(Object.keys(out.offers[0]).sort(), [
      'cudaMaxGood', 'diskGb', 'dlperf', 'dlperfPerDollar', 'dphTotal', 'estimatedCostUsd', 'gpuName', 'gpuRamGb', 'id',
      'inetDownMbps', 'location', 'machineId', 'numGpus', 'reliability', 'verified',
    ])
    const table = ups(['offers', '--gpu', 'RTX_4090'])
    assert.equal(table.code, 0)
    assert.match(table.stdout, /^ID\s+GPU\s+\$\/h\s+GPU RAM GB\s+Reliab\.\s+Location\s+DLPerf\/\$/)
    assert.match(table.stdout, /5001001\s+1x RTX 4090\s+0\.3679\s+24\.6\s+99\.8%\s+Sweden, SE\s+223\.7/)
  })

  test('offers --config: filters from the config\'s vast section, each offer priced at the dry-run estimate', () => {
    const r = ups(['offers', '--config', 'configs/train_burgers_32dim.yaml', '--set', 'vast.gpu=RTX_4090', '--set', 'vast.max_price=1', '--json'])
    assert.equal(r.code, 0, r.stderr)
    const out = r.json()
    assert.match(out.query, /gpu_name=RTX_4090/)
    assert.match(out.query, /dph_total<=1/)
    assert.ok(out.offers.length > 0)
    for (const o of out.offers) {
      assert.ok(o.estimatedCostUsd > 0, 'every offer has a cost')
      // The same hours for every offer: cost / price is constant.
      assert.ok(Math.abs(o.estimatedCostUsd / o.dphTotal - out.offers[0].estimatedCostUsd / out.offers[0].dphTotal) < 1e-6)
    }
    assert.equal(ups(['offers', '--config', 'configs/local_smoke.yaml', '--hours', '2']).code, 2, '--hours and --config exclude each other')
  })

  test('instances list / show --json', () => {
    const list = ups(['instances', 'list', '--status', 'running', '--json'])
    assert.equal(list.code, 0, list.stderr)
    assert.deepEqual(list.json().instances.map((i: {id: number}) => i.id), [id])
    assert.equal(list.json().instances[0].gpuUtil, 87.5)
    assert.deepEqual(ups(['instances', 'list', '--status', 'stopped', '--json']).json().instances, [])
    const show = ups(['instances', 'show', String(id), '--json'])
    assert.equal(show.code, 0)
    assert.equal(show.json().instance.label, 'ups-e2e')
    assert.equal(show.json().instance.status, 'running')
  })

  test('logs --tail and ssh-url', () => {
    const logs = ups(['instances', 'logs', String(id), '--tail', '3', '--json'])
    assert.equal(logs.code, 0, logs.stderr)
    assert.deepEqual(logs.json(), {id, lines: ['line 28', 'line 29', 'line 30']})
    assert.equal(ups(['instances', 'logs', String(id), '--tail', '2']).stdout, 'line 29\nline 30\n')
    const ssh = ups(['instances', 'ssh-url', String(id), '--json'])
    assert.match(ssh.json().url, /^ssh:\/\/root@ssh\d\.vast\.ai:2\d{4}$/)
  })

  test('stop, then logs --follow ends (instance no longer running), then start', () => {
    const stop = ups(['instances', 'stop', String(id), '--json'])
    assert.equal(stop.code, 0, stop.stderr)
    assert.deepEqual(stop.json(), {id, action: 'stop', ok: true})
    assert.equal(ups(['instances', 'show', String(id), '--json']).json().instance.status, 'stopped')
    const follow = ups(['instances', 'logs', String(id), '--follow', '--tail', '1'])
    assert.equal(follow.code, 0)
    assert.equal(follow.stdout, 'line 30\n')
    const start = ups(['instances', 'start', String(id)])
    assert.equal(start.code, 0)
    assert.equal(start.stdout, `Starting instance ${id}.\n`)
  })

  test('destroy refuses without --yes on a non-TTY (exit 2), then destroys with --yes', () => {
    const refused = ups(['instances', 'destroy', String(id), '--json'])
    assert.equal(refused.code, 2)
    assert.equal(refused.json().error.code, 'VAST_CONFIRM_REQUIRED')
    assert.equal(ups(['instances', 'show', String(id), '--json']).code, 0, 'still there')
    assert.ok(!(fake.read().calls ?? []).some((c) => c.argv[0] === 'destroy'), 'vastai destroy was never called')
    const done = ups(['instances', 'destroy', String(id), '--yes', '--json'])
    assert.equal(done.code, 0, done.stderr)
    assert.deepEqual(done.json(), {id, action: 'destroy', ok: true, recorded: false}, 'ups did not launch it: no record to note it on')
    const gone = ups(['instances', 'show', String(id), '--json'])
    assert.equal(gone.code, 2)
    assert.equal(gone.json().error.code, 'VAST_NOT_FOUND')
  })

  test('errors: bad key -> exit 3 VAST_UNAUTHORIZED; missing CLI -> exit 3 VAST_NOT_INSTALLED', () => {
    const bad = ups(['instances', 'list', '--json'], 'wrong_key_0000')
    assert.equal(bad.code, 3)
    assert.equal(bad.json().error.code, 'VAST_UNAUTHORIZED')
    const missing = ups(['offers', '--vastai-bin', `${fake.dir}/nope`])
    assert.equal(missing.code, 3)
    assert.match(missing.stderr, /pip install vastai/)
  })

  test('the API key never appears in output or debug logs', () => {
    fake.update((s) => void (s.faults = [{command: 'show instances', status: 429, msg: 'too frequent', times: 1}]))
    const runs = [ups(['instances', 'list', '--verbose']), ups(['offers', '--verbose', '--json']), ups(['instances', 'show', '999', '--verbose'])]
    assert.match(runs[0].stderr, /vastai call/, 'debug log is on with --verbose')
    for (const r of runs) assert.ok(!r.stdout.includes(KEY) && !r.stderr.includes(KEY))
  })
})
