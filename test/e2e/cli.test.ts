import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {test} from 'node:test'

import {EXIT_CODE_MEANINGS} from '../../src/util/errors.js'
import {hasStackTrace, REPO_ROOT, runCli} from '../helpers.js'

test('ups --help lists the commands; --version prints the version', async () => {
  const help = await runCli(['--help'])
  assert.equal(help.code, 0)
  for (const command of ['validate', 'doctor', 'config', 'sync']) assert.match(help.stdout, new RegExp(`\\b${command}\\b`))
  const version = await runCli(['--version'])
  assert.match(version.stdout, /^ups\/\d+\.\d+\.\d+/)
})

test('every command has --help with examples', async () => {
  const {Config} = await import('@oclif/core')
  const config = await Config.load({root: REPO_ROOT})
  for (const command of config.commands.filter((c) => c.id !== 'help')) {
    assert.ok((command.examples ?? []).length > 0, `${command.id} has no examples`)
    assert.ok(command.summary || command.description, `${command.id} has no summary`)
    assert.ok(command.flags.json, `${command.id} has no --json`)
  }
})

test('an unknown command exits non-zero without a stack trace', async () => {
  const r = await runCli(['frobnicate'])
  assert.notEqual(r.code, 0)
  assert.ok(!hasStackTrace(r.stderr), r.stderr)
})

test('the README command reference matches --help', () => {
  const r = spawnSync(process.execPath, ['scripts/readme-commands.mjs', '--check'], {cwd: REPO_ROOT, encoding: 'utf8'})
  assert.equal(r.status, 0, r.stderr)
})

test('every command --help shows the exit-code table from the one source', async () => {
  for (const command of [['validate'], ['doctor'], ['config', 'show']]) {
    const r = await runCli([...command, '--help'])
    const section = r.stdout.slice(r.stdout.indexOf('EXIT CODES')).replace(/\s+/g, ' ')
    for (const [code, meaning] of Object.entries(EXIT_CODE_MEANINGS)) assert.ok(section.includes(`${code} ${meaning}`), `${command}: missing exit code ${code}`)
  }
})

test('doctor reports keys as yes/no, never their values', async () => {
  const secret = 'vast-secret-value-123456'
  const r = await runCli(['doctor', '--json'], {env: {VAST_API_KEY: secret, WANDB_API_KEY: '', UPS_VASTAI_BIN: '/nonexistent/vastai'}})
  assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret))
  const result = JSON.parse(r.stdout)
  assert.equal(result.secrets.VAST_API_KEY, true)
  assert.equal(result.secrets.WANDB_API_KEY, false)
  assert.ok(result.backends.some((b: {name: string; available: boolean}) => b.name === 'cpu' && b.available))
  const vast = result.checks.find((c: {id: string}) => c.id === 'vastai.cli')
  assert.equal(vast.status, 'warn')
  assert.match(vast.fix, /pip install vastai/)
})
