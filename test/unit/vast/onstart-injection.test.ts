/**
 * Hostile values in every field of the onstart plan: each is either refused (UserError naming the
 * field) or ends up a quoted literal. The strongest check is running the script: with stub git,
 * npm, node, curl, apt-get and vastai on PATH, no value may create a PWNED file.
 */
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'

import {UserError} from '../../../src/util/errors.js'
import {FORWARDED_SECRETS, type OnstartPlan, buildOnstartScript, formatEnvOption, parseSourceSpec, withoutCredentials} from '../../../src/vast/index.js'
import {SECRET_ENV_VARS} from '../../../src/util/secrets.js'

const COMMIT = '0123456789abcdef0123456789abcdef01234567'
const base = (): OnstartPlan => ({
  source: {gitUrl: 'https://github.com/example/ups.git', ref: COMMIT},
  trainConfig: 'configs/train_burgers_32dim.yaml',
  runArgs: ['--stages', 'operator'],
  data: ['generate:burgers --samples 64'],
  autoShutdown: true,
  runId: 'run_20260101_000000_abcd',
  workdir: 'app',
  logFile: 'run.log',
  onExit: [['sync', 'run_20260101_000000_abcd']],
})

/** Each field of the plan, and how to put a value into it. */
const FIELDS: Record<string, (p: OnstartPlan, v: string) => void> = {
  gitUrl: (p, v) => (p.source.gitUrl = v),
  gitUrlTail: (p, v) => (p.source.gitUrl = `https://github.com/example/${v}`),
  ref: (p, v) => (p.source.ref = v),
  trainConfig: (p, v) => (p.trainConfig = v),
  trainConfigTail: (p, v) => (p.trainConfig = `configs/${v}.yaml`),
  runArg: (p, v) => (p.runArgs = ['--note', v]),
  dataUrl: (p, v) => (p.data = [`url:https://example.org/${v}`]),
  dataGenerate: (p, v) => (p.data = [`generate:burgers ${v}`]),
  dataRaw: (p, v) => (p.data = [v]),
  runId: (p, v) => (p.runId = v),
  resumeRunId: (p, v) => (p.resumeRunId = v),
  resumeWithWait: (p, v) => Object.assign(p, {resumeRunId: v, restoreWait: {timeoutS: 0}}),
  workdir: (p, v) => (p.workdir = v),
  logFile: (p, v) => (p.logFile = v),
  onExitWord: (p, v) => (p.onExit = [['sync', v]]),
  onExitCommand: (p, v) => (p.onExit = [[v]]),
}

const PAYLOADS = [
  '$(touch PWNED)',
  '`touch PWNED`',
  '; touch PWNED',
  "x'; touch PWNED; echo '",
  'x"; touch PWNED; echo "',
  '${IFS}$(touch${IFS}PWNED)',
  'a\ntouch PWNED',
  'a\rtouch PWNED',
  '# \ntouch PWNED\n#',
]
const CONTROL = ['a\nb', 'a\rb', 'a\u0000b', 'a\tb', 'a\u001bb', 'a\u007fb']

function bashN(script: string): void {
  const r = spawnSync('bash', ['-n'], {input: script, encoding: 'utf8'})
  assert.equal(r.status, 0, r.stderr)
}

function findNamed(dir: string, name: string): string[] {
  return readdirSync(dir, {recursive: true, encoding: 'utf8'}).filter((p) => p.split('/').pop() === name)
}

describe('onstart script: hostile values in every field', () => {
  let dir: string
  let bin: string
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'ups-onstart-inj-'))
    bin = join(dir, 'bin')
    mkdirSync(bin)
    const stub = (name: string, body: string) => {
      writeFileSync(join(bin, name), `#!/bin/bash\n${body}\n`)
      chmodSync(join(bin, name), 0o755)
    }
    // ups (node) fails everything but run/doctor/data: the on-exit step's failure message runs too.
    stub('node', 'if [ "$1" = -v ]; then echo v20.11.1; exit 0; fi\nshift\ncase "$1" in run|resume|doctor|data) exit 0;; *) exit 1;; esac')
    stub('git', `[ "$1" = rev-parse ] && echo ${COMMIT}\nexit 0`)
    for (const name of ['npm', 'curl', 'apt-get', 'vastai', 'sleep', 'sync', 'pip', 'python3']) stub(name, 'exit 0')
    stub('ldconfig', 'echo libvulkan.so.1 libEGL.so.1')
  })
  after(() => rmSync(dir, {recursive: true, force: true}))

  /** Builds and runs the plan in a fresh folder; returns 'refused' or the PWNED files it made. */
  function attempt(field: string, value: string): 'refused' | string[] {
    const plan = base()
    FIELDS[field](plan, value)
    let script: string
    try {
      script = buildOnstartScript(plan).script
    } catch (error) {
      assert.ok(error instanceof UserError, `${field}: ${String(error)}`)
      assert.equal(error.exitCode, 2)
      return 'refused'
    }
    bashN(script)
    const root = mkdtempSync(join(dir, 'run-'))
    spawnSync('bash', ['-c', script], {cwd: root, encoding: 'utf8', env: {PATH: `${bin}:/usr/bin:/bin`, HOME: root, TMPDIR: root, CONTAINER_ID: '31000042'}})
    return findNamed(root, 'PWNED')
  }

  for (const field of Object.keys(FIELDS)) {
    test(`${field}: refused or inert`, () => {
      for (const value of PAYLOADS) {
        const r = attempt(field, value)
        if (/[\n\r]/.test(value)) assert.equal(r, 'refused', `${field} accepted a value with a line break: ${JSON.stringify(value)}`)
        else if (r !== 'refused') assert.deepEqual(r, [], `${field} = ${JSON.stringify(value)} ran a command`)
      }
    })
  }

  test('control characters are refused in every field, naming the field', () => {
    for (const field of Object.keys(FIELDS)) {
      for (const value of CONTROL) {
        const plan = base()
        FIELDS[field](plan, value)
        assert.throws(() => buildOnstartScript(plan), (e: UserError) => e.code === 'VAST_ONSTART_INVALID' && e.exitCode === 2, `${field} ${JSON.stringify(value)}`)
      }
    }
    const plan = base()
    plan.trainConfig = 'configs/x\ntouch PWNED.yaml'
    assert.throws(() => buildOnstartScript(plan), (e: UserError) => /training config path contains a control character/.test(e.message))
  })

  test('plain values still run as before: quotes and $ reach ups verbatim', () => {
    const plan = base()
    plan.runArgs = ['--note', `it's "$(nothing)" \`x\` ; y`]
    const {script} = buildOnstartScript(plan)
    bashN(script)
    assert.match(script, /^# ups onstart: ups run configs\/train_burgers_32dim\.yaml at 0123456789abcdef/m)
  })
})

describe('credentials in the git URL', () => {
  const withUrl = (gitUrl: string) => buildOnstartScript({...base(), source: {gitUrl, ref: 'main'}})
  test('https://TOKEN@ is refused like https://user:pass@; the refusal does not echo the token', () => {
    for (const url of ['https://ghp_abcdefghijklmnopqrstuvwxyz0123456789@github.com/x/y.git', 'https://s3cr3tt0k3n@host/x.git', 'https://user:s3cr3tt0k3n@host/x.git', 'git+https://s3cr3tt0k3n@host/x.git', 'ssh://git:s3cr3tt0k3n@host/x.git']) {
      assert.throws(() => withUrl(url), (e: UserError) => e.code === 'VAST_ONSTART_INVALID' && !e.message.includes('s3cr3tt0k3n') && !e.message.includes('ghp_'), url)
      assert.throws(() => parseSourceSpec(`git:${url}#main`), (e: UserError) => e.code === 'LAUNCH_BAD_SOURCE' && e.exitCode === 2 && !e.message.includes('s3cr3tt0k3n') && !e.message.includes('ghp_'), url)
    }
  })
  test('an ssh user is no credential; a checkout origin loses only credentials', () => {
    assert.doesNotThrow(() => withUrl('ssh://git@github.com/x/y.git'))
    assert.doesNotThrow(() => withUrl('git@github.com:x/y.git'))
    assert.deepEqual(parseSourceSpec('git:ssh://git@github.com/x/y.git#main'), {gitUrl: 'ssh://git@github.com/x/y.git', ref: 'main'})
    assert.equal(withoutCredentials('https://s3cr3tt0k3n@github.com/x/y.git'), 'https://github.com/x/y.git')
    assert.equal(withoutCredentials('https://u:p@github.com/x/y.git'), 'https://github.com/x/y.git')
    assert.equal(withoutCredentials('ssh://git@github.com/x/y.git'), 'ssh://git@github.com/x/y.git')
  })
  test('other secrets in run arguments and data specs are refused', () => {
    for (const over of [{runArgs: ['--note', 'ghp_abcdefghijklmnopqrstuvwxyz0123456789']}, {data: ['url:https://tok3n@host/x.h5']}, {runArgs: ['--api-key', 'abcdef123456']}]) {
      assert.throws(() => buildOnstartScript({...base(), ...over}), (e: UserError) => e.code === 'VAST_ONSTART_INVALID', JSON.stringify(over))
    }
  })
  test('instance env (the create call, not the script): names and values with shell syntax are refused', () => {
    assert.equal(formatEnvOption({WANDB_API_KEY: 'abc123_DEF-4.5', NVIDIA_DRIVER_CAPABILITIES: 'compute,utility'}), '-e WANDB_API_KEY=abc123_DEF-4.5 -e NVIDIA_DRIVER_CAPABILITIES=compute,utility')
    for (const value of [...PAYLOADS, ...CONTROL, 'a\\b', 'a&b', 'a|b', 'a>b', '']) {
      assert.throws(() => formatEnvOption({WANDB_API_KEY: value}), (e: UserError) => e.code === 'VAST_BAD_ENV', JSON.stringify(value))
    }
    for (const name of ['A B', 'A;B', '$(x)', 'A\nB', '1A']) assert.throws(() => formatEnvOption({[name]: 'v'}), (e: UserError) => e.code === 'VAST_BAD_ENV', name)
  })

  test('every variable ups forwards to the instance is one the redactor knows', () => {
    for (const name of FORWARDED_SECRETS) assert.ok((SECRET_ENV_VARS as readonly string[]).includes(name), name)
  })
})
