// Package test holds end-to-end, fault and load tests that drive the built
// auditledger binary the way an operator or an auditor would, against real
// servers (versitygw for S3 with Object Lock).
package test
