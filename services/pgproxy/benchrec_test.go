package pgproxy

func benchRecord(p *Policy, sql string) { statementFields(sql, p) }
