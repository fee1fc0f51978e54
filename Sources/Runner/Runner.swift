import Learners
