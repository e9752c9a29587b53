import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Status } from 'nice-grpc';
import { toServerError } from '../../core/errors.js';
import { assertNotPrivileged, NetnsResolver, NETNS_FIELD } from './netns.js';

// No root needed: these netns do not exist or the URLs are malformed, so nothing is entered.

test('netns resolution: a netns that does not exist is NotFound naming it (NOT_FOUND at the edge, not UNKNOWN)', async () => {
  const r = new NetnsResolver();
  for (const url of ['inode://4/1', 'file:///run/netns/nsmt-does-not-exist']) {
    await assert.rejects(r.resolve(url), (e: Error) => {
      assert.equal(e.name, 'NotFoundError');
      assert.ok(e.message.includes(url), e.message);
      assert.equal(toServerError(e).code, Status.NOT_FOUND);
      return true;
    });
    assert.equal(await r.tryResolve(url), undefined);
  }
});

test('netns resolution: a malformed URL or a file that is no netns is InvalidArgument naming the parameter', async () => {
  const r = new NetnsResolver();
  for (const url of ['netns://x', 'inode://4', 'inode://a/b', 'file://relative', 'file:///%zz', '', 'file:///etc/hostname', `inode://1/${'9'.repeat(3000)}`]) {
    await assert.rejects(r.resolve(url), (e: Error & { field?: string }) => {
      assert.equal(e.name, 'InvalidArgumentError', `${url.slice(0, 40)}: ${e.message}`);
      assert.equal(e.field, NETNS_FIELD);
      assert.ok(e.message.length < 400, 'a long URL is shown as an excerpt');
      assert.equal(toServerError(e).code, Status.INVALID_ARGUMENT);
      return true;
    });
  }
});

test('never in a privileged netns: the data plane refuses its own netns (the node\'s, for a hostNetwork forwarder) with PermissionDenied', async () => {
  await assert.rejects(assertNotPrivileged('inode://x/own', '/proc/self/ns/net', 'client'), (e: Error) => {
    assert.equal(e.name, 'PermissionDeniedError');
    assert.match(e.message, /^client netns inode:\/\/x\/own is the forwarder's own network namespace/);
    assert.equal(toServerError(e).code, Status.PERMISSION_DENIED);
    return true;
  });
  // a path that is gone is left to the next step's own error
  await assertNotPrivileged('file:///nonexistent', '/nonexistent', 'endpoint');
});
