-- Registries declared in the registries file (registries_file): the file that declares an entry
-- (NULL: made through the API) and why the file's entry could not be applied as written (NULL: it
-- was). A declared entry is changed and removed only by the file.
ALTER TABLE registries ADD COLUMN declared_in TEXT;
ALTER TABLE registries ADD COLUMN declaration_error TEXT;
