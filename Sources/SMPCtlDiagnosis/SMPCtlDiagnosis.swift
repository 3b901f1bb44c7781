// Diagnosis of failed updates: knowledge base, image inspection, build-folder doctor.
