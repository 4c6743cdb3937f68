/**
 * The audit service's own Prometheus metrics (besides the kit's gRPC ones):
 * `bulwark_audit_tree_size`, `bulwark_audit_commit_records` (records per group commit),
 * `bulwark_audit_commit_seconds` and `bulwark_audit_commit_failures_total`.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { AuditLogOptions } from './log.ts';

export function auditMetrics(registry: Registry): NonNullable<AuditLogOptions['onCommit']> {
  const registers = [registry];
  const size = new Gauge({
    name: 'bulwark_audit_tree_size',
    help: 'Leaves in the audit log',
    registers,
  });
  const records = new Histogram({
    name: 'bulwark_audit_commit_records',
    help: 'Records committed together in one durable transaction',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
    registers,
  });
  const seconds = new Histogram({
    name: 'bulwark_audit_commit_seconds',
    help: 'Time of one durable commit (transaction and fsync)',
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1],
    registers,
  });
  const failures = new Counter({
    name: 'bulwark_audit_commit_failures_total',
    help: 'Group commits that failed (storage unavailable)',
    registers,
  });
  return (e) => {
    if (e.ok) {
      records.observe(e.records);
      seconds.observe(e.seconds);
      size.set(e.treeSize);
    } else {
      failures.inc();
    }
  };
}
