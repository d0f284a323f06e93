from otter.test_files import test_case

OK_FORMAT = False

name = "q6_lora_design"
points = 4

@test_case(points=0, hidden=False)
def test_within_budget(LORA):
    from course_lib.grading import check_lora_settings
    check_lora_settings(LORA)

