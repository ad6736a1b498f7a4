package sqlstore

// SplitStatements is splitStatements, for the external tests that load
// SQL files the way Migrate does.
var SplitStatements = splitStatements
