// Access control and audit through asPrincipal, from a configuration file
// with [access] rules and [audit], as in docs/access-control.md.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { open } from 'tierfs';

import { rejectsWith, tempDir, throwsWith } from './helpers.mjs';

const CONFIG = `
[backends.main]
type = "local"
path = "data"

[access]
default = "none"

[[access.rules]]
principal = "*"
resource = "public/"
level = "read"

[[access.rules]]
principal = "role:staff"
resource = "*"
level = "full"

[[access.rules]]
principal = "role:staff"
resource = "public/"
level = "write"

[[access.rules]]
principal = "carol"
resource = "public/salaries.csv"
level = "none"

[[access.rules]]
principal = "lead"
resource = "team/"
level = "full"

[audit]
path = "audit/audit.log"
`;

async function openStore(t) {
  const dir = tempDir(t, 'tierfs-access-');
  const file = join(dir, 'tierfs.toml');
  writeFileSync(file, CONFIG);
  const admin = await open({ config: file, principal: { id: 'root', roles: ['staff'] } });
  t.after(() => admin.close());
  return { admin, dir };
}

test('rules decide per principal, as in the worked example', async (t) => {
  const { admin } = await openStore(t);
  await admin.put('public/a.txt', 'public text');
  await admin.put('public/salaries.csv', 'secret numbers');
  await admin.put('home/x', 'private');

  const bob = admin.asPrincipal('bob');
  assert.equal(bob.principal, 'bob');
  assert.equal((await bob.get('public/a.txt')).toString(), 'public text');
  await rejectsWith(bob.put('public/a.txt', 'defaced'), 'EACCES', { key: 'public/a.txt' });
  await rejectsWith(bob.get('home/x'), 'EACCES', { key: 'home/x' });
  throwsWith(() => bob.getSync('home/x'), 'EACCES');
  await rejectsWith(bob.delete('public/a.txt'), 'EACCES');

  const carol = admin.asPrincipal('carol', { roles: ['staff'] });
  await carol.put('public/a.txt', 'edited by carol');
  await carol.delete('home/x');
  await rejectsWith(carol.get('public/salaries.csv'), 'EACCES', { key: 'public/salaries.csv' });
  assert.equal(carol.explain('read', 'public/salaries.csv').allowed, false);
  assert.match(carol.explain('read', 'public/salaries.csv').rule, /carol none on public\/salaries\.csv/);

  // A listing never shows what the caller may not read.
  const seen = [];
  for await (const e of carol.list('public/')) seen.push(e.key);
  assert.deepEqual(seen, ['public/a.txt']);
  await rejectsWith(bob.batch([{ op: 'put', key: 'public/b', data: 'x' }]), 'EACCES');
  assert.equal(await admin.exists('public/b'), false);
});

test('every attempt is audited, allowed and denied, with keys but not values', async (t) => {
  const { admin, dir } = await openStore(t);
  const bob = admin.asPrincipal('bob');
  await admin.put('public/report.txt', 'VALUE-NEVER-LOGGED');
  await bob.get('public/report.txt');
  await rejectsWith(bob.put('public/report.txt', 'VALUE-NEVER-LOGGED-2'), 'EACCES');

  const bobs = await admin.auditLog({ principal: 'bob' });
  assert.deepEqual(
    bobs.map((r) => [r.operation, r.result, r.keys[0]]),
    [
      ['read', 'allowed', 'public/report.txt'],
      ['write', 'denied', 'public/report.txt'],
    ],
  );
  for (const r of bobs) {
    assert.equal(typeof r.seq, 'number');
    assert.equal(r.hash.length, 64);
    assert.ok(!Number.isNaN(Date.parse(r.time)));
  }
  const denied = await admin.auditLog({ result: 'denied', since: new Date(Date.now() - 60_000) });
  assert.ok(denied.length >= 1 && denied.every((r) => r.result === 'denied'));
  assert.equal((await admin.auditLog({ keyPrefix: 'public/', limit: 1 })).length, 1);
  await rejectsWith(bob.auditLog(), 'EACCES');

  const log = readFileSync(join(dir, 'audit', 'audit.log'), 'utf8');
  assert.match(log, /"principal":"bob"/);
  assert.doesNotMatch(log, /VALUE-NEVER-LOGGED/);
  // The refused audit query by bob is itself audited.
  assert.ok((await admin.auditLog({ principal: 'bob', result: 'denied' })).some((r) => r.operation === 'admin:query_audit'));
});

test('rules change at run time, with delegation limited to what one holds', async (t) => {
  const { admin } = await openStore(t);
  await admin.put('team/doc', 'team doc');
  await admin.put('other/doc', 'other doc');
  const bob = admin.asPrincipal('bob');
  const lead = admin.asPrincipal('lead');
  await rejectsWith(bob.get('team/doc'), 'EACCES');

  await lead.addRule({ principal: 'bob', resource: 'team/doc', level: 'read' });
  assert.equal((await bob.get('team/doc')).toString(), 'team doc');
  await rejectsWith(lead.addRule({ principal: 'bob', resource: 'other/', level: 'read' }), 'EACCES');
  await rejectsWith(bob.addRule({ principal: 'bob', resource: '*', level: 'full' }), 'EACCES');

  const policy = await admin.accessPolicy();
  assert.equal(policy.default, 'none');
  assert.ok(policy.rules.some((r) => r.principal === 'bob' && r.resource === 'team/doc' && r.level === 'read'));
  assert.ok(policy.rules.every((r) => typeof r.operation === 'string'));

  await lead.removeRule({ principal: 'bob', resource: 'team/doc', level: 'read' });
  await rejectsWith(bob.get('team/doc'), 'EACCES');
  await rejectsWith(lead.removeRule({ principal: 'bob', resource: 'team/doc', level: 'read' }), 'ENOENT');

  const audit = await admin.auditLog({ principal: 'lead' });
  assert.ok(audit.some((r) => r.operation === 'admin:add_rule' && r.result === 'allowed'));
  assert.ok(audit.some((r) => r.operation === 'admin:add_rule' && r.result === 'denied'));
});

test('a delegate cannot lift an administrator\'s deny nor lock the administrator out', async (t) => {
  const { admin } = await openStore(t);
  await admin.put('team/secret.txt', 'the secret');
  await admin.addRule({ principal: 'lead', resource: 'team/secret.txt', operation: 'read', level: 'none' });
  const lead = admin.asPrincipal('lead');
  await rejectsWith(lead.removeRule({ principal: 'lead', resource: 'team/secret.txt', operation: 'read', level: 'none' }), 'EACCES');
  await rejectsWith(lead.get('team/secret.txt'), 'EACCES');
  await rejectsWith(lead.addRule({ principal: 'lead', resource: 'team/secret.txt', level: 'full' }), 'EACCES');
  await rejectsWith(lead.addRule({ principal: 'root', resource: 'team/', level: 'none' }), 'EACCES');
  await rejectsWith(lead.addRule({ principal: '*', resource: 'team/', level: 'none' }), 'EACCES');
  assert.equal((await admin.get('team/secret.txt')).toString(), 'the secret');

  await lead.addRule({ principal: 'bob', resource: 'team/doc', level: 'read' });
  const rules = (await admin.accessPolicy()).rules;
  const added = rules.find((r) => r.principal === 'bob' && r.resource === 'team/doc');
  assert.equal(added.addedBy, 'lead');
  assert.equal(added.authority, 'team/');
  assert.ok(rules.filter((r) => r.principal === 'lead' && r.resource === 'team/').every((r) => r.addedBy === undefined));
  // root, administrator of everything, can always undo.
  await admin.removeRule({ principal: 'lead', resource: 'team/secret.txt', operation: 'read', level: 'none' });
  assert.equal((await lead.get('team/secret.txt')).toString(), 'the secret');
});

test('explain: one\'s own rights, or another\'s with admin; audited', async (t) => {
  const { admin } = await openStore(t);
  await admin.put('home/x', 'private');
  const bob = admin.asPrincipal('bob');
  const own = bob.explain('read', 'home/x');
  assert.equal(own.allowed, false);
  assert.equal(own.cache, null);
  throwsWith(() => bob.explain('read', 'home/x', 'root'), 'EACCES');
  assert.equal(admin.explain('read', 'home/x', 'bob').allowed, false);
  const explained = (await admin.auditLog({ keyPrefix: 'home/x' })).filter((r) => r.operation === 'explain');
  assert.deepEqual(explained.map((r) => [r.principal, r.result]), [['bob', 'allowed'], ['bob', 'denied'], ['root', 'allowed']]);
});

test('admin commands need admin rights', async (t) => {
  const { admin } = await openStore(t);
  const bob = admin.asPrincipal('bob');
  await rejectsWith(bob.addBackend('scratch', { type: 'memory' }), 'EACCES');
  await admin.addBackend('scratch', { type: 'memory' });
  await rejectsWith(bob.removeBackend('scratch'), 'EACCES');
  await admin.removeBackend('scratch');
});
