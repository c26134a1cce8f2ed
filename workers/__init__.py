"""RQ jobs: sending SMS, inbound-SMS handling, delivery reconciliation."""
