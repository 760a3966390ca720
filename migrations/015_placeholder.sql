-- placeholder (tern refuses a file without SQL)
SELECT 1;
