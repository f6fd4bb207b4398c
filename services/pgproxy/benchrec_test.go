package pgproxy

func benchRecord(_ *Policy, sql string) { statementFields(sql) }
