package kombo

// DecodePage is decodePage, for the benchmark of the external tests.
var DecodePage = decodePage
