import assert from 'node:assert/strict'
import {Writable} from 'node:stream'
import {after, before, describe, test} from 'node:test'
import pino from 'pino'

import {UserError} from '../../../src/util/errors.js'
import {VastCli, VastProvider, detectFailure} from '../../../src/vast/index.js'
import {type FakeVast, makeFakeVast} from '../../fixtures/fake-vast.js'

const KEY = 'vk_test_0123456789abcdef'

function memoryLogger() {
  const lines: string[] = []
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk))
      cb()
    },
  })
  return {logger: pino({level: 'debug'}, stream), lines}
}

function client(fake: FakeVast, over: Partial<ConstructorParameters<typeof VastCli>[0]> = {}) {
  const sleeps: number[] = []
  const log = memoryLogger()
  const cli = new VastCli({
    env: {...fake.env({VAST_API_KEY: KEY}), UPS_VASTAI_BIN: fake.bin},
    logger: log.logger,
    sleep: async (ms) => {
      sleeps.push(ms)
    },
    ...over,
  })
  return {provider: new VastProvider(cli), sleeps, logs: log.lines, cli}
}

async function rejectsWith(p: Promise<unknown>, code: string, extra?: (e: UserError) => void) {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof UserError, `expected UserError, got ${e}`)
    assert.equal(e.code, code, e.message)
    extra?.(e)
    return true
  })
}

describe('vast client against the fake CLI', () => {
  let fake: FakeVast
  before(() => {
    fake = makeFakeVast({apiKey: KEY})
  })
  after(() => fake.cleanup())

  test('bin comes from UPS_VASTAI_BIN in the env, and the option wins over it', () => {
    assert.equal(client(fake).cli.bin, fake.bin)
    assert.equal(new VastCli({bin: '/x/vastai', env: {UPS_VASTAI_BIN: '/y'}}).bin, '/x/vastai')
    assert.equal(new VastCli({env: {}}).bin, 'vastai')
  })

  test('search parses offers (gpu_ram MB -> GB) and sends the query with GB units', async () => {
    const {provider} = client(fake)
    const offers = await provider.search({filters: {gpu: 'RTX_4090', minGpuRamGb: 20}, order: 'dph'})
    assert.deepEqual(offers.map((o) => o.id), [5001001])
    assert.equal(offers[0].gpuRamGb, 24.6)
    assert.equal(offers[0].gpuName, 'RTX 4090')
    assert.equal(offers[0].dlperfPerDollar, 223.7)
    const call = fake.read().calls!.at(-1)!
    assert.deepEqual(call.argv.slice(0, 3), ['search', 'offers', 'gpu_name=RTX_4090 gpu_ram>=20 rentable=true'])
    assert.ok(call.argv.includes('--raw'))
  })

  test('create passes image, disk, env, onstart, label; show walks created -> loading -> running', async () => {
    const {provider, logs} = client(fake)
    const {id} = await provider.create({
      offerId: 5001001, image: 'ups/train:cuda11.2', diskGb: 64, env: {WANDB_API_KEY: 'wandb_secret_value_42'},
      onstart: 'echo hi', label: 'ups-test',
    })
    assert.equal(id, 31000001)
    const rec = fake.read().instances.find((i) => i.id === id)!
    assert.equal(rec.image, 'ups/train:cuda11.2')
    assert.equal(rec.disk, 64)
    assert.equal(rec.onstart, 'echo hi')
    assert.deepEqual(rec.env, {WANDB_API_KEY: 'wandb_secret_value_42'})
    assert.equal((await provider.show(id)).status, 'created')
    fake.advance(15)
    assert.equal((await provider.show(id)).status, 'loading')
    fake.advance(60)
    const running = await provider.show(id)
    assert.equal(running.status, 'running')
    assert.equal(running.label, 'ups-test')
    assert.deepEqual(running.envKeys, ['WANDB_API_KEY'])
    assert.ok(!JSON.stringify(running).includes('wandb_secret_value_42'), 'env values are dropped')
    const all = logs.join('')
    assert.ok(!all.includes('wandb_secret_value_42'), 'create env values are masked in the debug log')
    assert.ok(all.includes('vastai call') && all.includes('"ms"'))
  })

  test('the API key goes through the env only: never in argv, never in the debug log', async () => {
    const {provider, logs} = client(fake)
    await provider.list()
    for (const c of fake.read().calls!) {
      assert.equal(c.hasApiKey, true)
      assert.ok(!c.argv.join(' ').includes(KEY))
      assert.ok(!c.argv.includes('--api-key'))
    }
    assert.ok(logs.length > 0)
    assert.ok(!logs.join('').includes(KEY))
  })

  test('a wrong key is VAST_UNAUTHORIZED (exit 3) with the key hint', async () => {
    const {provider} = client(fake, {env: {...fake.env({VAST_API_KEY: 'wrong_key_9999'}), UPS_VASTAI_BIN: fake.bin}})
    await rejectsWith(provider.list(), 'VAST_UNAUTHORIZED', (e) => {
      assert.equal(e.exitCode, 3)
      assert.match(e.hint ?? '', /VAST_API_KEY/)
      assert.equal(e.details?.status, 401)
    })
  })

  test('list, stop, start, logs, ssh-url, destroy, then show -> {"instances": null} is VAST_NOT_FOUND', async () => {
    const {provider} = client(fake)
    const id = fake.addInstance({label: 'b', direct: true})
    fake.writeLog(id, 'line 1\nline 2\nTraining started\n')
    const listed = await provider.list()
    assert.ok(listed.some((i) => i.id === id && i.status === 'running'))
    assert.deepEqual(await provider.logs(id, {tail: 2}), ['line 2', 'Training started'])
    assert.deepEqual(await provider.logs(id), ['line 1', 'line 2', 'Training started'])
    assert.match(await provider.sshUrl(id), /^ssh:\/\/root@198\.51\.100\.\d+:40\d{3}$/)
    await provider.stop(id)
    assert.equal((await provider.show(id)).status, 'stopped')
    await provider.start(id)
    assert.equal((await provider.show(id)).intendedStatus, 'running')
    await provider.destroy(id)
    await rejectsWith(provider.show(id), 'VAST_NOT_FOUND', (e) => assert.equal(e.exitCode, 2))
    await rejectsWith(provider.sshUrl(id), 'VAST_NOT_FOUND')
    await rejectsWith(provider.stop(id), 'VAST_NOT_FOUND')
    await rejectsWith(provider.logs(id), 'VAST_NOT_FOUND')
  })
})

describe('vast client faults', () => {
  let fake: FakeVast
  before(() => {
    fake = makeFakeVast()
  })
  after(() => fake.cleanup())
  const fault = (f: Record<string, unknown>) => fake.update((s) => void (s.faults = [f as never]))
  const callCount = (cmd: string) => (fake.read().calls ?? []).filter((c) => c.argv.join(' ').startsWith(cmd)).length

  test('429 then ok: a read-only call retries with backoff and succeeds', async () => {
    // The client itself tries 3 times per call (like the real one); the 4th 429 reaches ups.
    fault({command: 'show instances', status: 429, msg: 'API requests too frequent endpoint threshold=2.0', times: 4})
    const {provider, sleeps} = client(fake, {backoffMs: 100})
    const before = callCount('show instances')
    assert.deepEqual(await provider.list(), [])
    assert.equal(callCount('show instances') - before, 2)
    assert.deepEqual(sleeps, [100])
  })

  const requests = (cmd: string) => (fake.read().requests ?? []).filter((r) => r.command === cmd).length

  test('the fake retries like the real client: one 503 on a create without --retry 1 rents twice', async () => {
    fake.update((s) => void (s.faults = [{command: 'create instance', status: 503, msg: 'Service unavailable', times: 1, applied: true}]))
    const n = fake.read().instances.length
    const before = requests('create instance')
    const cli = client(fake).cli
    const {stdout} = await cli.exec(['create', 'instance', '5001001', '--image', 'img', '--label', 'x', '--raw'], {mutating: true})
    assert.match(stdout, /new_contract/)
    assert.equal(requests('create instance') - before, 2, 'the client sent the create twice')
    assert.equal(fake.read().instances.length - n, 2, 'two paid instances')
  })

  test('create passes --retry 1: one 503 is one create request and an error (no second rental)', async () => {
    fault({command: 'create instance', status: 503, msg: 'Service unavailable', times: 1})
    const {provider} = client(fake)
    const before = requests('create instance')
    await rejectsWith(provider.create({offerId: 5001001, image: 'img', diskGb: 10, label: 'once'}), 'VAST_API_ERROR', (e) => assert.equal(e.details?.status, 503))
    assert.equal(requests('create instance') - before, 1)
    const call = fake.read().calls!.at(-1)!
    assert.deepEqual(call.argv.slice(-3), ['--retry', '1', '--raw'])
  })

  test('HTTP 0 "Expecting value" (a garbled 200) is a transient API error, not a usage error', async () => {
    fault({command: 'show instances', garbled: true})
    const {provider} = client(fake, {attempts: 1})
    await rejectsWith(provider.list(), 'VAST_API_ERROR', (e) => {
      assert.equal(e.exitCode, 3)
      assert.equal(e.details?.status, 0)
      assert.equal(e.details?.transient, true)
      assert.match(e.message, /could not read Vast\.ai's reply .*Expecting value/)
      assert.doesNotMatch(e.hint ?? '', /arguments/)
    })
    const plain = detectFailure({stdout: '', stderr: 'Expecting value: line 1 column 1 (char 0)\n', exitCode: 0, timedOut: false, notInstalled: false}, ['stop', 'instance', '1'])
    assert.equal(plain?.details?.status, 0)
    fake.update((s) => void (s.faults = []))
  })

  test('5xx on every try: reads give up after the attempts with VAST_API_ERROR (exit 3)', async () => {
    fault({command: 'search offers', status: 503, msg: 'Service unavailable'})
    const {provider, sleeps} = client(fake, {attempts: 2})
    await rejectsWith(provider.search({filters: {}}), 'VAST_API_ERROR', (e) => {
      assert.equal(e.exitCode, 3)
      assert.equal(e.details?.status, 503)
      assert.match(e.message, /Service unavailable/)
    })
    assert.equal(sleeps.length, 1)
  })

  test('create is never retried on a transient error', async () => {
    fault({command: 'create instance', status: 429, msg: 'too frequent', times: 1})
    const {provider, sleeps} = client(fake)
    const before = callCount('create instance')
    const n = fake.read().instances.length
    await rejectsWith(provider.create({offerId: 5001001, image: 'img', diskGb: 10}), 'VAST_API_ERROR')
    assert.equal(callCount('create instance') - before, 1)
    assert.deepEqual(sleeps, [])
    assert.equal(fake.read().instances.length, n)
  })

  test('stop/destroy are never retried on a 500', async () => {
    const id = fake.addInstance()
    fault({command: 'destroy instance', status: 500, msg: 'Internal server error'})
    const {provider} = client(fake)
    const before = callCount('destroy instance')
    await rejectsWith(provider.destroy(id), 'VAST_API_ERROR')
    assert.equal(callCount('destroy instance') - before, 1)
    fake.update((s) => void (s.faults = []))
  })

  test('404 on create (unknown offer) is VAST_NOT_FOUND with the message', async () => {
    const {provider} = client(fake)
    await rejectsWith(provider.create({offerId: 999, image: 'img', diskGb: 10}), 'VAST_NOT_FOUND', (e) => {
      assert.match(e.message, /no_such_ask/)
    })
  })

  test('malformed JSON is VAST_MALFORMED_OUTPUT', async () => {
    fault({command: 'search offers', malformed: true})
    const {provider} = client(fake, {attempts: 1})
    await rejectsWith(provider.search({filters: {}}), 'VAST_MALFORMED_OUTPUT', (e) => assert.equal(e.exitCode, 3))
  })

  test('a hung CLI is VAST_TIMEOUT', async () => {
    fault({command: 'show instances', timeout: 5})
    const {provider} = client(fake, {attempts: 1, timeoutMs: 300})
    await rejectsWith(provider.list(), 'VAST_TIMEOUT')
    fake.update((s) => void (s.faults = []))
  })

  test('tracebacks: TimeoutError is VAST_TIMEOUT, connection refused is a transient API error', async () => {
    fault({command: 'logs', traceback: 'TimeoutError'})
    const id = fake.addInstance()
    const {provider} = client(fake, {attempts: 1})
    await rejectsWith(provider.logs(id), 'VAST_TIMEOUT')
    fault({command: 'show instances', traceback: 'ConnectionRefused'})
    await rejectsWith(provider.list(), 'VAST_API_ERROR', (e) => {
      assert.match(e.message, /could not reach/)
      assert.equal(e.details?.transient, true)
    })
  })

  test('a missing binary is VAST_NOT_INSTALLED with the pip hint (exit 3)', async () => {
    const provider = new VastProvider(new VastCli({bin: `${fake.dir}/no-such-vastai`, env: fake.env()}))
    await rejectsWith(provider.list(), 'VAST_NOT_INSTALLED', (e) => {
      assert.equal(e.exitCode, 3)
      assert.match(e.hint ?? '', /pip install vastai/)
    })
  })

  test('an instance that vanishes is VAST_NOT_FOUND on the next show', async () => {
    const {provider} = client(fake)
    const now = fake.read().now
    const id = fake.addInstance({vanishAt: now + 10})
    assert.equal((await provider.show(id)).status, 'running')
    fake.advance(11)
    await rejectsWith(provider.show(id), 'VAST_NOT_FOUND')
  })
})

describe('detectFailure on recorded outputs', () => {
  const ok = {exitCode: 0, timedOut: false, notInstalled: false}
  test('text-form errors of non-raw calls (captures 37, 53): status and message, never the key tail', () => {
    const e401 = detectFailure(
      {...ok, stdout: '', stderr: 'Failed with error 401: Invalid user key\n  Sent key from $VAST_API_KEY (ends in ...1234). Update the env var with a new key.\n'},
      ['stop', 'instance', '1'],
    )!
    assert.equal(e401.code, 'VAST_UNAUTHORIZED')
    assert.ok(!e401.message.includes('1234'))
    const e404 = detectFailure({...ok, stdout: '', stderr: 'Failed with error 404: Not found (mock-injected)\n'}, ['stop', 'instance', '1'])!
    assert.equal(e404.code, 'VAST_NOT_FOUND')
    assert.equal(e404.details?.command, 'vastai stop instance')
  })
  test('exit 0 with an error JSON on stderr is a failure; success output is not', () => {
    const e = detectFailure({...ok, stdout: '', stderr: '{"error": true, "status_code": 500, "msg": "(no detail message supplied)"}\n'}, ['show', 'instances'])!
    assert.equal(e.code, 'VAST_API_ERROR')
    assert.equal(e.details?.transient, true)
    assert.equal(detectFailure({...ok, stdout: 'stopping instance 1.\n', stderr: ''}, ['stop', 'instance', '1']), undefined)
  })
  test('ssh-url of an unknown id (exit 1, message on stdout) is VAST_NOT_FOUND', () => {
    const e = detectFailure({...ok, exitCode: 1, stdout: 'error: no instance found with id 999\n', stderr: ''}, ['ssh-url', '999'])!
    assert.equal(e.code, 'VAST_NOT_FOUND')
  })
})
