import assert from 'node:assert/strict'
import {test} from 'node:test'

import {findSecret, isSecretName, redactConfigSecrets, redactSecrets, secretEnvValues, urlHasCredentials} from '../../src/util/secrets.js'

const HEX40 = 'a3f1c2e4b5d6978812ab34cd56ef7890a1b2c3d4'
const HEX64 = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'
const NO_ENV = {}

test('assignments are redacted by the name, whatever the value and with no environment', () => {
  const cases: Array<[string, string]> = [
    [`WANDB_API_KEY=${HEX40}`, 'WANDB_API_KEY=[REDACTED]'],
    [`VAST_API_KEY: ${HEX64}`, 'VAST_API_KEY: [REDACTED]'],
    [`{"WANDB_API_KEY": "${HEX40}", "epoch": 3}`, '{"WANDB_API_KEY": "[REDACTED]", "epoch": 3}'],
    [`environ({'HF_TOKEN': 'hf_short', 'HOME': '/root'})`, `environ({'HF_TOKEN': '[REDACTED]', 'HOME': '/root'})`],
    ['export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', 'export AWS_SECRET_ACCESS_KEY=[REDACTED]'],
    [`DB_PASSWORD='hunter2 with spaces'`, `DB_PASSWORD='[REDACTED]'`],
    ['password: hunter2', 'password: [REDACTED]'],
    ['-e GITHUB_TOKEN=abc123def -e NVIDIA_DRIVER_CAPABILITIES=compute', '-e GITHUB_TOKEN=[REDACTED] -e NVIDIA_DRIVER_CAPABILITIES=compute'],
    ['wandb.login(apiKey=abcdefgh)', 'wandb.login(apiKey=[REDACTED])'],
    ['GET /v1?api_key=abcdef1234&x=1', 'GET /v1?api_key=[REDACTED]&x=1'],
    ['x-api-key: abcdef1234', 'x-api-key: [REDACTED]'],
    [`vastai --api-key ${HEX64} show instances`, 'vastai --api-key [REDACTED] show instances'],
    [`tool --token=${HEX40}`, 'tool --token=[REDACTED]'],
    [`wandb login --relogin ${HEX40}`, 'wandb login --relogin [REDACTED]'],
    [`vastai set api-key ${HEX64}`, 'vastai set api-key [REDACTED]'],
  ]
  for (const [input, expected] of cases) assert.equal(redactSecrets(input, NO_ENV), expected, input)
})

test('key shapes, bearer tokens and URL credentials are redacted anywhere', () => {
  const gh = 'ghp_' + 'A1b2C3d4E5'.repeat(4)
  const cases: Array<[string, string]> = [
    [`cloning with ${gh}`, 'cloning with [REDACTED]'],
    [`github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz`, '[REDACTED]'],
    ['gho_' + 'x'.repeat(36) + ' ghs_' + 'y'.repeat(36), '[REDACTED] [REDACTED]'],
    ['key id AKIAIOSFODNN7EXAMPLE in use', 'key id [REDACTED] in use'],
    ['hf_' + 'AbCdEfGhIjKlMnOpQrStUvWxYz012345 loaded', '[REDACTED] loaded'],
    ['wandb_v1_' + 'E7z65cs8PnYoE4OoqnlUlABzZbZ_fJS2hyxPvtioe666B37gx', '[REDACTED]'],
    [`local-${HEX40}`, '[REDACTED]'],
    ['Authorization: Bearer eyJhbGciOi.J9xyz-123', 'Authorization: Bearer [REDACTED]'],
    ['authorization: Basic dXNlcjpwYXNz', 'authorization: Basic [REDACTED]'],
    ['sent bearer abc123def456', 'sent bearer [REDACTED]'],
    ['git clone https://user:s3cret@github.com/o/r.git', 'git clone https://[REDACTED]@github.com/o/r.git'],
    ['fatal: https://ghtoken0123@github.com/o/r.git not found', 'fatal: https://[REDACTED]@github.com/o/r.git not found'],
  ]
  for (const [input, expected] of cases) assert.equal(redactSecrets(input, NO_ENV), expected, input)
})

test('ordinary log text survives: hashes, commits, ssh users, tokens counts, KeyError', () => {
  const keep = [
    `checkpoint operator_epoch3.bin sha256=${HEX64}`,
    `sha256: ${HEX64}`,
    `project at commit ${HEX40}`,
    `latent cache ${HEX64}.bin`,
    'ssh://root@ssh4.vast.ai:20001',
    'git@github.com:org/ups.git',
    'latent 32 tokens x 32 dims; num_tokens=32 tokens: 16',
    "KeyError: 'loss'",
    'gates passed: 3 pass: yes',
    'operator epoch 1/25 loss=0.8123 grad_norm=0.12',
    'config: batch_size: 16',
    'export VAST_API_KEY="$CONTAINER_API_KEY"',
    'api_key: ${env:WANDB_API_KEY}',
    'WANDB_API_KEY=[REDACTED:WANDB_API_KEY] and VAST_API_KEY: [REDACTED]',
    'export WANDB_API_KEY=... or write ${env:WANDB_API_KEY:-default}',
    'the bearer of bad news',
    'cache_key_count=4',
  ]
  for (const line of keep) assert.equal(redactSecrets(line, NO_ENV), line, line)
})

test('values of secret env variables are redacted by name, including other secret-named ones', () => {
  const env = {VAST_API_KEY: 'vk_live_abcdef', WANDB_API_KEY: 'wb-key-1234', HF_TOKEN: 'hfvalue12345', PATH: '/usr/bin:/bin', SHORT_TOKEN: 'abc', KEY_DIR: '/home/u/keys'}
  const out = redactSecrets('a vk_live_abcdef b wb-key-1234 c hfvalue12345 d /usr/bin:/bin abc /home/u/keys', env)
  assert.equal(out, 'a [REDACTED:VAST_API_KEY] b [REDACTED:WANDB_API_KEY] c [REDACTED:HF_TOKEN] d /usr/bin:/bin abc /home/u/keys')
  assert.deepEqual(secretEnvValues(env).map(([n]) => n).sort(), ['HF_TOKEN', 'VAST_API_KEY', 'WANDB_API_KEY'])
})

test('secret names: the last word decides', () => {
  for (const n of ['WANDB_API_KEY', 'apiKey', 'x-api-key', 'HF_TOKEN', 'token', 'client_secret', 'DB_PASS', 'password', 'GOOGLE_APPLICATION_CREDENTIALS', 'accessToken', '--api-key']) assert.ok(isSecretName(n), n)
  for (const n of ['KeyError', 'tokens', 'num_tokens', 'passed', 'key', 'pass', 'AWS_ACCESS_KEY_ID', 'monkey', 'keyboard', 'bypass']) assert.ok(!isSecretName(n), n)
})

test('URL credentials: any user in http(s), a password elsewhere', () => {
  assert.ok(urlHasCredentials('https://TOKEN@host/x'))
  assert.ok(urlHasCredentials('https://u:p@host/x'))
  assert.ok(urlHasCredentials('ssh://git:p@host/x'))
  assert.ok(!urlHasCredentials('ssh://git@host/x'))
  assert.ok(!urlHasCredentials('https://host/x@y'))
  assert.equal(findSecret('https://host/a.h5'), undefined)
  assert.equal(findSecret('tok_abcdef123', {WANDB_API_KEY: 'tok_abcdef123'}), 'the value of WANDB_API_KEY')
})

test('redactConfigSecrets puts ${env:NAME} back for secret values, leaves the rest and the input alone', () => {
  const config = {logging: {wandb: {notes: 'key k3y-abcdef-123 here', project: 'p'}}, latent: {dim: 32}, list: ['k3y-abcdef-123'], other: 'plain'}
  const env = {WANDB_API_KEY: 'k3y-abcdef-123', HOME: '/root'}
  const out = redactConfigSecrets(config, env)
  assert.deepEqual(out, {logging: {wandb: {notes: 'key ${env:WANDB_API_KEY} here', project: 'p'}}, latent: {dim: 32}, list: ['${env:WANDB_API_KEY}'], other: 'plain'})
  assert.equal(config.logging.wandb.notes, 'key k3y-abcdef-123 here')
  assert.equal(redactConfigSecrets('a: k3y-abcdef-123\n', env), 'a: ${env:WANDB_API_KEY}\n')
})
